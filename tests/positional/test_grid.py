"""2-D learned tables (posemb.positional.grid): the module, its out-of-range error, and
every method of ``extend_grid`` on worked examples, against torch's own interpolation and
timm's ``resample_abs_pos_embed`` where timm is installed."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import posemb
from posemb.positional.grid import GRID_METHODS, extend_grid, sincos_grid


def table(prefix: int, grid: tuple[int, int], d: int = 4, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(prefix + grid[0] * grid[1], d, generator=g)


def test_the_worked_example_of_tile():
    w = torch.tensor([[9.0], [1.0], [2.0], [3.0], [4.0]])  # [cls a b c d]: a 2 x 2 grid
    out = extend_grid(w, (2, 2), (3, 3), "tile", prefix=1).flatten().tolist()
    assert out == [9, 1, 2, 1, 3, 4, 3, 1, 2, 1]  # [cls a b a c d c a b a]
    assert extend_grid(w, (2, 2), (1, 1), "crop", prefix=1).flatten().tolist() == [9, 1]


@pytest.mark.parametrize("method", GRID_METHODS)
@pytest.mark.parametrize("prefix", [0, 1, 2])
def test_the_same_grid_is_the_identity_and_prefix_rows_are_untouched(method, prefix):
    w = table(prefix, (4, 5))
    same = extend_grid(w, (4, 5), (4, 5), method, prefix)
    torch.testing.assert_close(same, w, rtol=0, atol=1e-6)
    target = (4, 5) if method == "crop" else (6, 7)
    grown = extend_grid(w, (4, 5), target, method, prefix, generator=torch.Generator())
    assert grown.shape == (prefix + target[0] * target[1], 4)
    assert torch.equal(grown[:prefix], w[:prefix])


@pytest.mark.parametrize("method", ["bicubic", "bilinear"])
@pytest.mark.parametrize("antialias", [False, True])
def test_resampling_is_torchs_interpolate_on_the_grid(method, antialias):
    w = table(1, (5, 5), d=3)
    got = extend_grid(w, (5, 5), (3, 8), method, 1, antialias=antialias)
    grid = w[1:].reshape(5, 5, 3).permute(2, 0, 1)[None]  # [1, d, H, W]
    want = F.interpolate(grid, size=(3, 8), mode=method, align_corners=False, antialias=antialias)
    torch.testing.assert_close(got[1:], want[0].permute(1, 2, 0).reshape(24, 3))


def test_pad_random_keeps_the_old_grid_top_left_and_draws_the_rest():
    w = table(1, (2, 3))
    out = extend_grid(w, (2, 3), (3, 4), "pad-random", 1, std=0.5,
                      generator=torch.Generator().manual_seed(0))  # fmt: skip
    grid = out[1:].reshape(3, 4, -1)
    assert torch.equal(grid[:2, :3], w[1:].reshape(2, 3, -1))
    assert grid[2].abs().sum() > 0 and grid[:, 3].abs().sum() > 0


def test_bad_requests_are_refused_naming_the_problem():
    w = table(1, (2, 2))
    with pytest.raises(ValueError, match="has 5 rows; got shape"):
        extend_grid(w[:-1], (2, 2), (3, 3), "bicubic", 1)
    with pytest.raises(ValueError, match="crop makes a smaller grid"):
        extend_grid(w, (2, 2), (3, 3), "crop", 1)
    with pytest.raises(ValueError, match="pad-random makes a larger grid"):
        extend_grid(w, (2, 2), (1, 1), "pad-random", 1)
    with pytest.raises(ValueError, match="Did you mean 'bicubic'"):
        extend_grid(w, (2, 2), (3, 3), "bicubc", 1)


def test_the_module_refuses_a_grid_it_does_not_have_before_any_reshape():
    pe = posemb.LearnedGridPositionalEmbedding((14, 14), 8, prefix=1)
    assert pe((14, 14)).shape == (197, 8)
    with pytest.raises(posemb.GridOutOfRangeError) as e:
        pe((24, 24))
    assert str(e.value).startswith(
        "a grid of 24 x 24 patches is not the learned table's 14 x 14 (its rows are patches "
        "0..13 x 0..13). Resample the table to the new grid"
    )
    assert isinstance(e.value, IndexError) and e.value.grid == (24, 24)
    grown = pe.extend((24, 24), "bicubic")
    assert grown((24, 24)).shape == (577, 8)
    assert torch.equal(grown.weight[:1], pe.weight[:1]) and pe.grid == (14, 14)


def test_sincos_grid_encodes_rows_and_columns():
    t = sincos_grid((3, 4), 8)  # [12, 8]: channels 0-3 the row, 4-7 the column
    assert t.shape == (12, 8)
    rows = t[:, :4].reshape(3, 4, 4)
    cols = t[:, 4:].reshape(3, 4, 4)
    assert torch.equal(rows[:, 0], rows[:, 3]) and torch.equal(cols[0], cols[2])
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_grid((2, 2), 6)


def test_timms_resample_gives_the_same_table():
    timm_pos = pytest.importorskip(
        "timm.layers.pos_embed", reason="timm is not installed (it needs torchvision)"
    )
    w = table(1, (7, 7), d=6)
    want = timm_pos.resample_abs_pos_embed(
        w[None], new_size=(10, 10), old_size=(7, 7), num_prefix_tokens=1, antialias=True
    )[0]
    got = extend_grid(w, (7, 7), (10, 10), "bicubic", 1, antialias=True)
    torch.testing.assert_close(got, want)
