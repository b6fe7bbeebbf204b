"""Parity for every scheme (x-transformers' habit): the same computation by different routes.

- explicit default positions == no positions;
- KV-cached decoding, token by token and in chunks == one parallel pass (fp32, 1e-5);
- a left-padded row == the same row unpadded;
- FlexAttention's score_mod == the additive bias through SDPA (bias schemes).
"""

from __future__ import annotations

import pytest
import torch

import posemb
from posemb import ModelConfig, Transformer

SCHEMES = posemb.SCHEMES
TOL = dict(atol=1e-5, rtol=1e-5)


def tiny(scheme: str, **kw) -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig.preset("micro", position=scheme, **kw)).eval()


def randomise_position_params(model: Transformer) -> None:
    """Zero-initialised scheme parameters would hide bugs; give them values."""
    with torch.no_grad():
        for p in model.position_parameters():
            p.normal_(0, 0.5)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_explicit_positions_equal_default(scheme):
    model = tiny(scheme)
    ids = torch.randint(0, 256, (2, 12))
    default = model(ids).logits
    explicit = model(ids, positions=torch.arange(12).expand(2, 12)).logits
    torch.testing.assert_close(explicit, default, **TOL)
    shifted = model(ids, positions=torch.arange(12) + 3).logits
    if scheme == "nope":
        torch.testing.assert_close(shifted, default, **TOL)
    elif scheme in ("learned", "sinusoidal"):  # absolute schemes see the shift
        assert not torch.allclose(shifted, default, atol=1e-4)
    else:  # relative schemes are shift-invariant
        torch.testing.assert_close(shifted, default, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("causal", [True, False])
def test_kv_cache_equals_parallel(scheme, causal):
    model = tiny(scheme, causal=causal)
    randomise_position_params(model)
    ids = torch.randint(0, 256, (2, 11))
    full = model(ids).logits
    if not causal:  # an encoder's cache is only meaningful for the prefix it has seen
        out = model(ids, use_cache=True)
        torch.testing.assert_close(out.logits, full, **TOL)
        return
    # token by token
    out = model(ids[:, :1], use_cache=True)
    steps = [out.logits]
    for i in range(1, 11):
        out = model(ids[:, i : i + 1], cache=out.cache, use_cache=True)
        steps.append(out.logits)
    torch.testing.assert_close(torch.cat(steps, 1), full, **TOL)
    # in chunks (a multi-token step after a prefix needs a bottom-right causal mask)
    a = model(ids[:, :4], use_cache=True)
    b = model(ids[:, 4:9], cache=a.cache, use_cache=True)
    c = model(ids[:, 9:], cache=b.cache, use_cache=True)
    torch.testing.assert_close(torch.cat([a.logits, b.logits, c.logits], 1), full, **TOL)
    assert c.cache.length == 11


@pytest.mark.parametrize("scheme", SCHEMES)
def test_left_padding_equals_unpadded(scheme):
    model = tiny(scheme)
    randomise_position_params(model)
    ids = torch.randint(1, 256, (1, 7))
    alone = model(ids).logits
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), ids], 1)
    mask = torch.tensor([[0, 0, 0] + [1] * 7])
    batch_ids = torch.cat([padded, torch.randint(0, 256, (1, 10))], 0)
    batch_mask = torch.cat([mask, torch.ones(1, 10, dtype=torch.long)], 0)
    out = model(batch_ids, attention_mask=batch_mask).logits
    torch.testing.assert_close(out[:1, 3:], alone, **TOL)
    assert torch.isfinite(out).all(), "padded queries must not produce NaN"
    # cached continuation of the padded batch equals the unpadded continuation
    more = torch.randint(1, 256, (2, 1))
    first = model(batch_ids, attention_mask=batch_mask, use_cache=True)
    step = model(more, cache=first.cache).logits
    ref = model(torch.cat([ids, more[:1]], 1)).logits[:, -1:]
    torch.testing.assert_close(step[:1], ref, **TOL)


@pytest.mark.parametrize("scheme", ["alibi", "t5", "shaw"])
@pytest.mark.parametrize("causal", [True, False])
@torch.no_grad()  # FlexAttention has no CPU backward: compare forward passes
def test_flex_attention_equals_sdpa_bias(scheme, causal, monkeypatch):
    from posemb.model import attention

    calls = []
    real_flex = attention._flex_attention
    monkeypatch.setattr(
        attention, "_flex_attention", lambda *a, **k: calls.append(1) or real_flex(*a, **k)
    )
    sdpa = tiny(scheme, causal=causal, attention="sdpa")
    randomise_position_params(sdpa)
    flex = Transformer(sdpa.config.replace(attention="flex")).eval()
    flex.load_state_dict(sdpa.state_dict())
    ids = torch.randint(0, 256, (2, 9))
    mask = torch.tensor([[0, 0] + [1] * 7, [1] * 9])
    torch.testing.assert_close(flex(ids).logits, sdpa(ids).logits, **TOL)
    torch.testing.assert_close(
        flex(ids, attention_mask=mask).logits[:, 2:],
        sdpa(ids, attention_mask=mask).logits[:, 2:],
        **TOL,
    )
    if causal:  # prefill through flex, then decode steps through the SDPA bias path
        a = flex(ids[:, :5], use_cache=True)
        b = flex(ids[:, 5:], cache=a.cache)
        torch.testing.assert_close(torch.cat([a.logits, b.logits], 1), sdpa(ids).logits, **TOL)
    assert len(calls) >= 2 * sdpa.config.n_layer, "the flex path was not taken"


@pytest.mark.parametrize("scheme", SCHEMES)
def test_greedy_generate_equals_uncached_argmax(scheme):
    model = tiny(scheme)
    prompt = torch.randint(0, 256, (2, 5))
    got = model.generate(prompt, max_new_tokens=6, temperature=0)
    ids = prompt
    for _ in range(6):
        nxt = model(ids).logits[:, -1].argmax(-1, keepdim=True)
        ids = torch.cat([ids, nxt], 1)
    assert torch.equal(got, ids)


FRACTIONAL = [s for s in SCHEMES if posemb.positional.scheme_class(s).fractional_positions]


def test_the_schemes_that_read_fractional_positions():
    # the learned table mixes rows; the others' formulas take any real position; T5 buckets
    # and Shaw's clipped distances are integers
    assert FRACTIONAL == ["learned", "sinusoidal", "rope", "alibi", "nope"]


@pytest.mark.parametrize("scheme", FRACTIONAL)
def test_integer_valued_float_positions_equal_integer_positions(scheme):
    model = tiny(scheme)
    randomise_position_params(model)
    ids = torch.randint(0, 256, (2, 12))
    pos = torch.arange(12) + 3
    assert torch.equal(model(ids, positions=pos.float()).logits, model(ids, positions=pos).logits)


@pytest.mark.parametrize("scheme", FRACTIONAL)
@pytest.mark.parametrize("causal", [True, False])
def test_kv_cache_equals_parallel_at_fractional_positions(scheme, causal):
    """The stretch recipe's positions (spacing 0.3 from offset 1.7) through the cache."""
    model = tiny(scheme, causal=causal)
    randomise_position_params(model)
    ids = torch.randint(0, 256, (2, 11))
    pos = (1.7 + 0.3 * torch.arange(11)).expand(2, 11)
    full = model(ids, positions=pos).logits
    if scheme != "nope":  # the fractions reach the logits
        assert not torch.allclose(full, model(ids, positions=pos.round()).logits, atol=1e-4)
    if not causal:
        torch.testing.assert_close(model(ids, positions=pos, use_cache=True).logits, full, **TOL)
        return
    out = model(ids[:, :1], positions=pos[:, :1], use_cache=True)
    steps = [out.logits]
    for i in range(1, 11):
        out = model(ids[:, i : i + 1], positions=pos[:, i : i + 1], cache=out.cache, use_cache=True)
        steps.append(out.logits)
    torch.testing.assert_close(torch.cat(steps, 1), full, **TOL)
    a = model(ids[:, :4], positions=pos[:, :4], use_cache=True)
    b = model(ids[:, 4:], positions=pos[:, 4:], cache=a.cache)
    torch.testing.assert_close(torch.cat([a.logits, b.logits], 1), full, **TOL)


@pytest.mark.parametrize("scheme", [s for s in SCHEMES if s not in FRACTIONAL])
def test_schemes_of_integer_distances_refuse_fractional_positions(scheme):
    model = tiny(scheme)
    with pytest.raises(TypeError, match=f"model.position='{scheme}' reads integer positions only"):
        model(torch.randint(0, 256, (1, 4)), positions=torch.tensor([0.0, 0.5, 1.0, 1.5]))


def test_fractional_positions_past_the_table_or_not_numbers_are_refused_by_the_model():
    model = tiny("learned")  # 64 positions: 0 .. 63
    ids = torch.randint(0, 256, (1, 3))
    assert model(ids, positions=torch.tensor([61.0, 62.5, 63.0])).logits.shape == (1, 3, 256)
    with pytest.raises(posemb.PositionOutOfRangeError, match="position 63.5 is past the end"):
        model(ids, positions=torch.tensor([61.0, 62.5, 63.5]))
    with pytest.raises(ValueError, match="positions must be finite numbers, got nan"):
        model(ids, positions=torch.tensor([0.0, float("nan"), 1.0]))
