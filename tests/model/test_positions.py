"""The model's positional surface: the only way other modules reach its scheme.

``position_parameters``, ``position_table``, ``with_positions`` and ``extend_positions``;
and the ``has_table`` flag that callers ask instead of a scheme's name.
"""

from __future__ import annotations

import pytest
import torch

import posemb
from posemb import ModelConfig, Transformer, extend_table
from posemb.positional import REGISTRY, TABLE_SCHEMES

TABLED = ("learned", "t5", "shaw")  # schemes with trained parameters


def tiny(position: str = "learned", **kw) -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig.preset("micro", position=position, **kw)).eval()


def reload(model: Transformer) -> Transformer:
    """A model built from ``model.config`` with ``model``'s weights (strict: every key)."""
    fresh = Transformer(model.config).eval()
    fresh.load_state_dict(model.state_dict(), strict=True)
    return fresh


def test_only_the_learned_table_declares_a_table():
    assert TABLE_SCHEMES == ("learned",)
    assert [n for n, cls in REGISTRY.items() if cls.has_table] == ["learned"]
    for name in posemb.SCHEMES:
        assert ModelConfig(position=name).has_position_table == (name == "learned")


@pytest.mark.parametrize("scheme", posemb.SCHEMES)
def test_position_parameters_are_the_schemes_and_nothing_else(scheme):
    model = tiny(scheme)
    params = model.position_parameters()
    assert bool(params) == (scheme in TABLED)
    # exactly the tensors a checkpoint names pos.* (a shared scheme) or layer_pos.N.* (per layer)
    named = {id(p) for n, p in model.named_parameters() if n.startswith(("pos.", "layer_pos."))}
    assert {id(p) for p in params} == named


@pytest.mark.parametrize("scheme", posemb.SCHEMES)
def test_position_table_is_the_learned_parameter_or_none(scheme):
    model = tiny(scheme)
    table = model.position_table()
    if scheme != "learned":
        assert table is None
        return
    assert table.shape == (model.config.max_positions, model.config.d_model)
    assert [table] == model.position_parameters()  # the parameter itself, not a copy


@pytest.mark.parametrize("scheme", posemb.SCHEMES)
def test_with_positions_swaps_only_the_scheme(scheme):
    model = tiny(scheme, causal=False)
    ids = torch.randint(0, 256, (1, 10))
    before = model(ids).logits
    bag = model.with_positions("nope")
    assert bag.config.position == "nope" and bag.config.position_options == {}
    assert bag.position_parameters() == [] and model.config.position == scheme
    torch.testing.assert_close(model(ids).logits, before, rtol=0, atol=0)  # untouched
    # every other weight copied (equal values, not shared)
    kept = {k: v for k, v in model.state_dict().items() if not k.startswith(("pos.", "layer_pos."))}
    assert set(bag.state_dict()) == set(kept)
    assert all(torch.equal(bag.state_dict()[k], v) for k, v in kept.items())
    assert bag.wte.weight.data_ptr() != model.wte.weight.data_ptr()
    # a bidirectional model without positions is permutation-equivariant
    perm = torch.randperm(10)
    torch.testing.assert_close(bag(ids[:, perm]).logits, bag(ids).logits[:, perm])
    reload(bag)  # its config describes its weights


def test_with_positions_builds_one_scheme_per_layer_when_the_scheme_wants_it():
    shaw = tiny("nope").with_positions("shaw", max_distance=3)
    assert len(shaw.position_schemes()) == shaw.config.n_layer
    assert shaw.config.position_options == {"max_distance": 3}
    assert reload(shaw).state_dict().keys() == shaw.state_dict().keys()


def test_with_positions_follows_the_models_dtype():
    model = tiny("nope").double()
    assert model.with_positions("learned").position_table().dtype == torch.float64


@pytest.mark.parametrize("method", posemb.EXTEND_METHODS)
def test_extend_positions_grows_the_table_and_says_so_in_the_config(method):
    model = tiny("learned")
    old = model.config.max_positions
    longer = model.extend_positions(2 * old, method)
    assert longer.config.max_positions == 2 * old and longer.position_limit == 2 * old
    assert model.config.max_positions == old and model.position_table().shape[0] == old
    expected = extend_table(model.position_table(), 2 * old, method)
    if method != "random":  # random rows come from the global generator here
        assert torch.equal(longer.position_table(), expected)
    ids = torch.randint(0, 256, (1, 2 * old))
    assert longer(ids).logits.shape == (1, 2 * old, 256)
    torch.testing.assert_close(reload(longer)(ids).logits, longer(ids).logits, rtol=0, atol=0)


def test_extend_positions_crops_and_changes_the_overflow_policy():
    model = tiny("learned")
    short = model.extend_positions(8, "tile")
    assert torch.equal(short.position_table(), model.position_table()[:8])
    clamped = model.extend_positions(overflow="clamp")
    assert clamped.config.position_options == {"overflow": "clamp"}
    assert clamped.position_limit is None and model.position_limit == 64
    assert torch.equal(clamped.position_table(), model.position_table())
    ids = torch.randint(0, 256, (1, 80))  # past the 64 rows: clamped, not refused
    assert clamped(ids).logits.shape == (1, 80, 256)
    with pytest.raises(posemb.PositionOutOfRangeError):
        model(ids)
    reload(clamped)


def test_fresh_random_rows_use_the_tables_own_std():
    model = tiny("learned", position_options={"std": 0.5})
    grown = model.extend_positions(96, "random", generator=torch.Generator().manual_seed(3))
    expected = extend_table(
        model.position_table(), 96, "random", std=0.5, generator=torch.Generator().manual_seed(3)
    )
    assert torch.equal(grown.position_table(), expected)
    given = model.extend_positions(96, "random", std=0.0)
    assert torch.equal(given.position_table()[64:], torch.zeros(32, 32))


@pytest.mark.parametrize("scheme", [s for s in posemb.SCHEMES if s != "learned"])
def test_a_scheme_without_a_table_cannot_be_extended(scheme):
    with pytest.raises(ValueError, match=rf"model.position='{scheme}' has no table.*learned"):
        tiny(scheme).extend_positions(128, "interpolate")
    with pytest.raises(TypeError, match="no position table"):
        tiny(scheme).scheme(0).extend(128)


def test_extend_positions_refuses_bad_values_before_copying():
    model = tiny("learned")
    with pytest.raises(ValueError, match="new_max must be an integer >= 1"):
        model.extend_positions(0, "tile")
    with pytest.raises(ValueError, match="unknown overflow policy 'clip'"):
        model.extend_positions(overflow="clip")
    with pytest.raises(ValueError, match="Did you mean 'interpolate'"):
        model.extend_positions(128, "interpolat")
