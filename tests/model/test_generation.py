"""generate(): boundary checks, padded vocabularies, tiny tables."""

from __future__ import annotations

import argparse

import pytest
import torch

from posemb import ModelConfig, Transformer
from posemb.cli.common import non_negative_float
from posemb.data import build_tokenizer
from posemb.model.generation import generate_text


def tiny(**kw) -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig.preset("micro", **kw)).eval()


@pytest.mark.parametrize(
    "ids, kwargs, match",
    [
        (torch.zeros(1, 0, dtype=torch.long), {}, "a prompt of at least one token"),
        (torch.zeros(4, dtype=torch.long), {}, "a prompt of at least one token"),
        (
            torch.zeros(1, 2, dtype=torch.long),
            {"temperature": float("nan")},
            "temperature must be a finite number",
        ),
        (
            torch.zeros(1, 2, dtype=torch.long),
            {"max_new_tokens": 2.5},
            "max_new_tokens must be an integer",
        ),
        (torch.zeros(1, 2, dtype=torch.long), {"top_k": 0.5}, "top_k must be an integer >= 1"),
        (
            torch.zeros(1, 2, dtype=torch.long),
            {"vocab_size": 0},
            r"vocab_size must be an integer in \[1, 256\]",
        ),
    ],
)
def test_bad_generate_arguments_are_value_errors(ids, kwargs, match):
    kwargs = {"max_new_tokens": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        tiny().generate(ids, **kwargs)


def test_vocab_size_never_samples_padded_ids():
    model = tiny()
    with torch.no_grad():  # make the padding ids the most likely ones
        model.lm_head.weight[10:] = model.lm_head.weight[10:] * 0 + 1.0
    out = model.generate(torch.zeros(2, 3, dtype=torch.long), 20, temperature=0, vocab_size=10)
    assert out.shape == (2, 23) and int(out[:, 3:].max()) < 10


def test_generate_text_with_a_char_tokenizer_smaller_than_the_model():
    tok = build_tokenizer("char", ["hello world"])
    assert tok.vocab_size < 256
    text = generate_text(tiny(), tok, "hello", 30, temperature=1.0, seed=0)
    assert text.startswith("hello") and len(text) == 35


def test_a_table_of_one_position_still_generates():
    out = tiny(max_positions=1).generate(torch.zeros(1, 3, dtype=torch.long), 4, temperature=0)
    assert out.shape == (1, 7)


@pytest.mark.parametrize("text", ["nan", "inf", "-1"])
def test_cli_temperature_must_be_finite_and_non_negative(text):
    with pytest.raises(argparse.ArgumentTypeError, match="finite number >= 0"):
        non_negative_float(text)
