"""The one home of value checks and did-you-mean errors (posemb.positional.checks)."""

from __future__ import annotations

import math

import pytest

from posemb import LearnedAbsolutePositionalEmbedding, extend_table
from posemb.data.errors import DataError
from posemb.positional.checks import (
    check_bool,
    check_finite,
    check_int,
    check_positive_int,
    closest,
    is_finite_number,
    is_int,
    is_number,
    unknown,
)
from posemb.train import build_config


def test_a_bool_is_never_an_int_or_a_number():
    assert is_int(3) and is_int(0) and is_int(-2)
    assert not is_int(True) and not is_int(False) and not is_int(3.0) and not is_int("3")
    assert is_number(3) and is_number(0.5) and is_number(math.nan)
    assert not is_number(True) and not is_number("0.5")
    assert is_finite_number(0.5) and not is_finite_number(math.inf)
    assert not is_finite_number(math.nan) and not is_finite_number(False)


@pytest.mark.parametrize("bad", [True, -1, 2.0, "3", None])
def test_check_int_names_the_value_and_the_minimum(bad):
    with pytest.raises(ValueError, match=rf"^offset must be an integer >= 0, got {bad!r}$"):
        check_int("offset", bad, minimum=0)
    assert check_int("offset", 0, minimum=0) == 0


def test_check_positive_int_check_bool_and_check_finite():
    assert check_positive_int("n", 1) == 1
    with pytest.raises(ValueError, match=r"^n must be a positive integer, got 0$"):
        check_positive_int("n", 0)
    assert check_bool("causal", False) is False
    with pytest.raises(ValueError, match=r"^causal must be True or False, got 1$"):
        check_bool("causal", 1)
    with pytest.raises(ValueError, match=r"^train.progress must be true or false, got 'yes'$"):
        check_bool("train.progress", "yes", "true or false")
    assert check_finite("lr", 0.1, 0.0) == 0.1
    with pytest.raises(ValueError, match=r"^lr must be a finite number >= 0.0, got nan$"):
        check_finite("lr", math.nan, 0.0)
    with pytest.raises(ValueError, match=r"beta1 must be a finite number in \[0.0, 1.0\), got 1.0"):
        check_finite("beta1", 1.0, 0.0, 1.0)


def test_unknown_names_the_closest_choice_and_an_alias():
    err = unknown("tokenizer kind", "bytes", ["byte", "char", "bpe"])
    assert type(err) is ValueError
    assert (
        str(err) == "unknown tokenizer kind 'bytes'. Did you mean 'byte'? Valid: byte, char, bpe."
    )
    assert closest("rotary", ["learned", "rope"]) == "rope"  # an alias, not a spelling
    assert closest("zzz", ["learned", "rope"]) is None
    assert isinstance(unknown("source", "x", ["stdlib"], DataError), DataError)


def test_bools_are_refused_where_integers_or_numbers_are_settings():
    # True used to pass as 1 for these (isinstance(True, int) is True)
    with pytest.raises(ValueError, match="train.warmup_steps must be an integer >= 0, got True"):
        build_config("tiny", {"train.warmup_steps": True})
    with pytest.raises(ValueError, match="std must be a finite number >= 0, got True"):
        LearnedAbsolutePositionalEmbedding(4, 2, std=True)
    with pytest.raises(ValueError, match="std must be a finite number >= 0, got True"):
        extend_table(LearnedAbsolutePositionalEmbedding(4, 2).weight, 6, "random", std=True)
