"""The registry: every scheme builds by name; unknown names and options are clear errors."""

from __future__ import annotations

import pytest

import posemb
from posemb.positional import build_scheme, scheme_options


def test_schemes_tuple_is_the_contract():
    assert posemb.SCHEMES == ("learned", "sinusoidal", "rope", "alibi", "t5", "shaw", "nope")


@pytest.mark.parametrize("name", posemb.SCHEMES)
def test_every_scheme_builds_from_model_context(name):
    scheme = build_scheme(name, dim=16, n_heads=2, head_dim=8, max_positions=32, causal=True)
    assert scheme.name == name
    hooks = (scheme.adds_to_input, scheme.rotates_qk, scheme.biases_logits)
    assert sum(hooks) <= 1
    assert (sum(hooks) == 0) == (name == "nope")


def test_unknown_scheme_names_the_closest():
    with pytest.raises(ValueError, match="Did you mean 'alibi'"):
        build_scheme("alibli")


def test_unknown_option_names_the_closest():
    with pytest.raises(ValueError, match="Did you mean 'overflow'"):
        build_scheme("learned", max_positions=8, dim=4, overflw="clamp")
    assert "init" in scheme_options("learned")


def test_missing_context_is_clear():
    with pytest.raises(ValueError, match="needs max_positions"):
        build_scheme("learned", dim=4)


@pytest.mark.parametrize(
    "name, options, match",
    [
        ("alibi", {"n_heads": 4, "causal": "no"}, "causal must be True or False"),
        ("t5", {"n_heads": 4, "causal": "no"}, "causal must be True or False"),
        ("rope", {"head_dim": 8, "interleaved": "yes"}, "interleaved must be True or False"),
        ("rope", {"head_dim": 8, "base": "x"}, "base must be a finite number > 1"),
        ("rope", {"head_dim": 8, "scale": float("inf")}, "scale must be a finite number > 0"),
        ("sinusoidal", {"dim": 4.5}, r"dim must be positive \(an integer\)"),
        ("sinusoidal", {"dim": 8, "scale": float("nan")}, "scale must be a finite number"),
        ("sinusoidal", {"dim": 8, "base": 1}, "base must be a finite number > 1"),
    ],
)
def test_bad_option_values_are_value_errors_naming_the_option(name, options, match):
    with pytest.raises(ValueError, match=match):
        build_scheme(name, **options)
