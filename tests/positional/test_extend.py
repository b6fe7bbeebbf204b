"""extend_table: every extension method's guarantees, hand-derivable cases, and the errors.

Reference values are derived in the docstrings or computed in float64 from the formula.
"""

from __future__ import annotations

import math

import pytest
import torch

from posemb.positional.extend import EXTEND_METHODS, extend_table
from posemb.positional.learned import LearnedAbsolutePositionalEmbedding
from posemb.positional.sinusoidal import sinusoidal_table

KEEPS_TRAINED_ROWS = ("random", "tile", "repeat-last", "extrapolate")
RESAMPLES = ("interpolate", "cubic")


def _table(rows: int, dim: int, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, dim, generator=g, dtype=torch.float64).to(dtype)


def _sinusoidal_f64(n: int, dim: int, base: float = 10000.0) -> torch.Tensor:
    """Vaswani et al. 2017, §3.5, in float64: [sin f0, cos f0, sin f1, ...]."""
    p = torch.arange(n, dtype=torch.float64)[:, None]
    inv_freq = base ** (-2 * torch.arange((dim + 1) // 2, dtype=torch.float64) / dim)
    ang = p * inv_freq
    return torch.stack([ang.sin(), ang.cos()], -1).flatten(-2)[:, :dim]


def test_methods_are_the_contract():
    assert EXTEND_METHODS == (
        "random",
        "tile",
        "repeat-last",
        "interpolate",
        "cubic",
        "extrapolate",
    )


# -- guarantees shared by every method -------------------------------------------------------------
@pytest.mark.parametrize("method", EXTEND_METHODS)
@pytest.mark.parametrize("offset", [0, 2])
def test_shape_dtype_offset_rows_and_input_untouched(method, offset):
    weight = _table(offset + 24, 6)
    before = weight.clone()
    out = extend_table(weight, offset + 61, method, offset=offset)
    assert out.shape == (offset + 61, 6)
    assert out.dtype == weight.dtype and out.device == weight.device
    assert torch.equal(weight, before), "the input table was modified"
    assert out.data_ptr() != weight.data_ptr()
    assert torch.equal(out[:offset], weight[:offset]), "reserved rows must be copied exactly"
    assert torch.isfinite(out).all()
    # every method keeps the first and the last trained row
    assert torch.equal(out[offset], weight[offset])
    if method in KEEPS_TRAINED_ROWS:
        assert torch.equal(out[: offset + 24], weight), "trained rows must be kept bit-for-bit"
    else:
        assert torch.equal(out[-1], weight[-1])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("method", EXTEND_METHODS)
def test_dtype_is_kept(method, dtype):
    weight = _table(12, 4, dtype=dtype)
    out = extend_table(weight, 30, method, offset=1)
    assert out.dtype == dtype
    assert torch.equal(out[:1], weight[:1])


@pytest.mark.parametrize("method", EXTEND_METHODS)
def test_shrinking_crops_and_same_length_copies(method):
    weight = _table(10, 3)
    assert torch.equal(extend_table(weight, 4, method, offset=2), weight[:4])
    same = extend_table(weight, 10, method, offset=2)
    assert torch.equal(same, weight)
    same[0, 0] = 99.0
    assert weight[0, 0] != 99.0, "new_len == N must return a copy, not a view"


def test_input_with_grad_gives_a_detached_table():
    weight = _table(8, 3).requires_grad_()
    out = extend_table(weight, 16, "interpolate")
    assert not out.requires_grad


# -- tile / repeat-last ----------------------------------------------------------------------------
def test_tile_repeats_the_trained_rows_cyclically():
    """Reserved row z, trained rows [a b c] -> 7 trained rows: [z a b c a b c a]."""
    weight = torch.tensor([[-9.0], [10.0], [11.0], [12.0]])  # z = -9 reserved, a b c = 10 11 12
    out = extend_table(weight, 8, "tile", offset=1)
    assert out.squeeze(1).tolist() == [-9.0, 10.0, 11.0, 12.0, 10.0, 11.0, 12.0, 10.0]


def test_repeat_last_copies_the_last_row():
    weight = _table(5, 4)
    out = extend_table(weight, 9, "repeat-last", offset=1)
    assert torch.equal(out[:5], weight)
    assert torch.equal(out[5:], weight[-1:].expand(4, -1))


# -- interpolate / cubic ---------------------------------------------------------------------------
def test_interpolate_hand_case():
    """[a b c] -> 5 rows samples old positions 0, .5, 1, 1.5, 2: [a (a+b)/2 b (b+c)/2 c]."""
    weight = torch.tensor([[0.0, 1.0], [2.0, 5.0], [4.0, -3.0]])
    out = extend_table(weight, 5, "interpolate")
    expected = torch.tensor([[0.0, 1.0], [1.0, 3.0], [2.0, 5.0], [3.0, 1.0], [4.0, -3.0]])
    assert torch.equal(out, expected)


@pytest.mark.parametrize("method", RESAMPLES)
def test_resampling_keeps_a_linear_table_linear(method):
    """Rows a + b*p stay exactly linear: new row j = a + b * j*(n-1)/(m-1)."""
    n, m, offset = 20, 77, 2
    a, b = torch.randn(1, 5, dtype=torch.float64), torch.randn(1, 5, dtype=torch.float64)
    p = torch.arange(n, dtype=torch.float64)[:, None]
    weight = torch.cat([torch.full((offset, 5), 7.0, dtype=torch.float64), a + b * p])
    out = extend_table(weight.float(), offset + m, method, offset=offset).double()
    q = torch.arange(m, dtype=torch.float64)[:, None] * (n - 1) / (m - 1)
    assert (out[offset:] - (a + b * q)).abs().max() < 1e-5
    assert torch.equal(out[:offset], weight[:offset].float().double())


def test_cubic_reproduces_a_quadratic_table_and_keeps_the_ends():
    """Catmull-Rom with Keys' boundary rows is exact for quadratics, ends included."""
    n, m = 16, 91
    p = torch.arange(n, dtype=torch.float64)[:, None]
    coeffs = torch.tensor([[0.5, -1.0, 2.0]], dtype=torch.float64)  # 3 columns
    weight = 1.0 + coeffs * p - 0.03 * coeffs * p**2
    out = extend_table(weight, m, "cubic")
    q = torch.arange(m, dtype=torch.float64)[:, None] * (n - 1) / (m - 1)
    expected = 1.0 + coeffs * q - 0.03 * coeffs * q**2
    assert (out - expected).abs().max() < 1e-9
    assert torch.equal(out[0], weight[0]) and torch.equal(out[-1], weight[-1])
    # linear interpolation is *not* exact on the curve (so the test above can fail)
    assert (extend_table(weight, m, "interpolate") - expected).abs().max() > 1e-3


def test_cubic_on_a_sinusoidal_table_beats_linear():
    n, m = 64, 253
    weight = _sinusoidal_f64(n, 8)
    q = torch.arange(m, dtype=torch.float64) * (n - 1) / (m - 1)
    inv_freq = 10000.0 ** (-2 * torch.arange(4, dtype=torch.float64) / 8)
    truth = torch.stack([(q[:, None] * inv_freq).sin(), (q[:, None] * inv_freq).cos()], -1).flatten(
        -2
    )
    err_cubic = (extend_table(weight, m, "cubic") - truth).abs().amax(0)  # [8] per column
    err_linear = (extend_table(weight, m, "interpolate") - truth).abs().amax(0)
    assert (err_cubic < 0.5 * err_linear).all()  # w = 1 rad/row: barely sampled
    assert (err_cubic[2:] < 0.1 * err_linear[2:]).all()  # w <= 0.1: well sampled


@pytest.mark.parametrize("method", RESAMPLES)
def test_resampling_a_single_trained_row_repeats_it(method):
    weight = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    out = extend_table(weight, 5, method, offset=1)
    assert torch.equal(out, torch.tensor([[1.0, 2.0]] + [[3.0, 4.0]] * 4))


# -- random ----------------------------------------------------------------------------------------
def test_random_rows_have_the_requested_std():
    weight = torch.zeros(3, 256)
    out = extend_table(weight, 3 + 2000, "random", offset=1, std=0.05)
    fresh = out[3:]
    assert abs(fresh.std().item() - 0.05) < 0.05 * 0.03
    assert abs(fresh.mean().item()) < 0.05 * 0.01
    assert torch.equal(out[:3], weight)


def test_random_generator_makes_it_reproducible():
    weight = _table(6, 8)

    def draw(seed: int) -> torch.Tensor:
        return extend_table(weight, 40, "random", generator=torch.Generator().manual_seed(seed))

    assert torch.equal(draw(3), draw(3))
    assert not torch.equal(draw(3), draw(4))


def test_random_std_zero_gives_zero_rows():
    out = extend_table(_table(4, 3), 9, "random", std=0.0)
    assert torch.equal(out[4:], torch.zeros(5, 3))


# -- extrapolate -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("n", "dim", "new_len"), [(256, 32, 1024), (256, 64, 512)])
def test_extrapolate_recovers_a_sinusoidal_table(n, dim, new_len):
    """Fit on the first n rows; rows n..new_len-1 must match the table to 1e-4."""
    out = extend_table(sinusoidal_table(n, dim), new_len, "extrapolate")
    assert torch.equal(out[:n], sinusoidal_table(n, dim))
    assert (out[n:] - sinusoidal_table(new_len, dim)[n:]).abs().max() < 1e-4
    assert (out[n:].double() - _sinusoidal_f64(new_len, dim)[n:]).abs().max() < 1e-4


def test_extrapolate_with_reserved_rows():
    n, dim, offset = 256, 16, 2
    reserved = torch.full((offset, dim), 5.0)
    weight = torch.cat([reserved, sinusoidal_table(n, dim)])
    out = extend_table(weight, offset + 768, "extrapolate", offset=offset)
    assert torch.equal(out[: offset + n], weight)
    assert (out[offset + n :] - sinusoidal_table(768, dim)[n:]).abs().max() < 1e-4


def test_extrapolate_recovers_off_grid_frequencies():
    """Sinusoids at frequencies of no FFT bin or table grid, one below one period (0.0123 rad
    over 200 rows = 2.5 rad), plus a constant: continued to 1.5x within 1e-4."""
    p = torch.arange(300, dtype=torch.float64)[:, None]
    col0 = 0.7 * torch.sin(0.05 * p + 0.3) + 0.2 * torch.cos(0.31 * p) + 0.1
    col1 = 0.05 * torch.sin(0.0123 * p + 1.0) - 0.4 * torch.cos(1.7 * p + 2.0)
    truth = torch.cat([col0 + 0.05 * torch.sin(0.0123 * p + 1.0), col1], 1)
    out = extend_table(truth[:200].float(), 300, "extrapolate")
    assert (out.double() - truth).abs().max() < 1e-4


def test_extrapolate_on_noise_stays_finite_and_bounded():
    weight = _table(130, 48, seed=1) * 0.02
    out = extend_table(weight, 130 + 1500, "extrapolate", offset=2)
    assert torch.isfinite(out).all()
    assert torch.equal(out[:130], weight)
    limit = 2.0 * weight[2:].abs().max()  # clip=2.0 by default
    assert out[130:].abs().max() <= limit
    # noise has nothing to continue: the continuation is much calmer than the noise itself
    assert out[130:].std() < 0.5 * weight[2:].std()


def test_extrapolate_clip_is_respected():
    p = torch.arange(40, dtype=torch.float64)[:, None]
    weight = (0.01 * p**2).float()  # a parabola: any continuation runs away
    out = extend_table(weight, 400, "extrapolate", clip=1.5)
    assert torch.isfinite(out).all()
    assert out.abs().max() <= 1.5 * weight.abs().max() + 1e-6


def test_extrapolate_short_table_continues_with_its_mean():
    weight = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    out = extend_table(weight, 5, "extrapolate")
    assert torch.equal(out[2:], torch.tensor([[2.0, 4.0]] * 3))


# -- errors ----------------------------------------------------------------------------------------
def test_unknown_method_names_the_closest():
    with pytest.raises(ValueError, match=r"'interpolat'.*Did you mean 'interpolate'.*extrapolate"):
        extend_table(_table(4, 2), 8, "interpolat")


@pytest.mark.parametrize(
    ("weight", "new_len", "offset", "match"),
    [
        (torch.zeros(8, 2), 2, 2, r"new_len must be an integer > offset=2.*got 2"),
        (torch.zeros(8, 2), 0, 0, r"new_len must be .*got 0"),
        (torch.zeros(8, 2), 16, -1, r"offset must be an integer in \[0, 7\].*got -1"),
        (torch.zeros(8, 2), 16, 8, r"offset must be .*got 8"),
        (torch.zeros(8), 16, 0, r"2-D \[rows, dim\].*\(8,\)"),
        (torch.zeros(2, 8, 2), 16, 0, r"2-D"),
        (torch.zeros(8, 2, dtype=torch.long), 16, 0, r"floating-point.*torch.int64.*float\(\)"),
    ],
)
def test_bad_arguments_raise_clear_errors(weight, new_len, offset, match):
    with pytest.raises(ValueError, match=match):
        extend_table(weight, new_len, "tile", offset=offset)


def test_bad_options_raise():
    with pytest.raises(ValueError, match=r"std must be a finite number >= 0, got -1"):
        extend_table(_table(4, 2), 8, "random", std=-1)
    with pytest.raises(ValueError, match=r"n_frequencies"):
        extend_table(_table(4, 2), 8, "extrapolate", n_frequencies=-2)
    with pytest.raises(ValueError, match=r"NaN or inf"):
        extend_table(torch.tensor([[1.0], [math.nan]]), 8, "extrapolate")


# -- through the module ----------------------------------------------------------------------------
@pytest.mark.parametrize("method", EXTEND_METHODS)
def test_learned_module_extend(method):
    torch.manual_seed(0)
    pe = LearnedAbsolutePositionalEmbedding(16, 8, offset=2)
    before = pe.weight.detach().clone()
    new = pe.extend(40, method=method)
    assert new is not pe and new.max_positions == 40 and pe.max_positions == 16
    assert new.weight.shape == (42, 8)
    assert torch.equal(pe.weight, before), "extend must leave the old module untouched"
    assert torch.equal(new.weight[:2], before[:2]), "reserved rows kept exactly"
    assert torch.equal(new.weight[2], before[2])
    if method in KEEPS_TRAINED_ROWS:
        assert torch.equal(new.weight[:18], before)
    new(torch.arange(40))  # every new position has a row


def test_learned_module_extend_random_uses_the_module_std():
    pe = LearnedAbsolutePositionalEmbedding(4, 512, std=0.1)
    new = pe.extend(404, method="random")
    assert abs(new.weight[4:].std().item() - 0.1) < 0.004
