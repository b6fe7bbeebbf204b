"""Learned tables in two dimensions: a vision transformer's patch positions.

A ViT cuts an image into a grid of ``H x W`` patches (224 px at 16 px: 14 x 14) and adds a
trained vector per patch, after ``P`` prefix rows for tokens that are not patches (the class
token; DeiT's distillation token). The table is ``[P + H*W, d]``, its grid rows in row-major
order (patch ``(i, j)`` is row ``P + i*W + j``). An image of another size asks for a grid the
table does not have (384 px at 16 px: 24 x 24): :class:`GridOutOfRangeError` says so before
any reshape, naming both grids and the remedies.

:func:`extend_grid` changes the grid of a table, a pure function; the prefix rows are copied
untouched by every method. The grid ``[[a b] [c d]]`` (2 x 2) to 3 x 3::

    bicubic, bilinear  resampled (torch's interpolate, align_corners=False: the grid's cells are
                       areas, corner to corner, as timm's resample_abs_pos_embed and every
                       transformers vision model's interpolate_pos_encoding); ``antialias``
                       low-pass filters first when the grid shrinks
    tile               [[a b a] [c d c] [a b a]]          periodic copy in both directions
    pad-random         [[a b r] [c d r] [r r r]]          the old grid top-left, r ~ N(0, std^2)
    crop               (to a smaller grid) the top-left cells: [[a]] for 1 x 1

so ``extend_grid(w, (2, 2), (3, 3), "tile", prefix=1)`` of ``w = [cls a b c d]`` is
``[cls a b a c d c a b a]``. Resampling to the same grid returns a copy of the table.

Notation: ``P`` prefix rows, ``H x W`` the grid in, ``h x w`` the grid out, ``d`` width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checks import check_bool, check_finite, check_int, unknown

GRID_METHODS: tuple[str, ...] = ("bicubic", "bilinear", "tile", "pad-random", "crop")
_RESAMPLE = ("bicubic", "bilinear")


class GridOutOfRangeError(IndexError):
    """An image whose patch grid the table does not hold.

    Attributes:
        grid: the grid asked for ``(h, w)``.
        table_grid: the grid the table holds ``(H, W)``.
    """

    def __init__(self, grid: tuple[int, int], table_grid: tuple[int, int]) -> None:
        self.grid, self.table_grid = tuple(grid), tuple(table_grid)
        (h, w), (H, W) = self.grid, self.table_grid
        super().__init__(
            f"a grid of {h} x {w} patches is not the learned table's {H} x {W} (its rows are "
            f"patches 0..{H - 1} x 0..{W - 1}). Resample the table to the new grid "
            f"(LearnedGridPositionalEmbedding.extend or posemb.extend_grid, methods: "
            f"{', '.join(GRID_METHODS)}; posemb extend --image-size for a Hugging Face folder), "
            "or feed images of the trained size"
        )

    def __reduce__(self):  # picklable across processes
        return (type(self), (self.grid, self.table_grid))


def _check_grid(name: str, grid: object) -> tuple[int, int]:
    if not isinstance(grid, (tuple, list)) or len(grid) != 2:
        raise ValueError(f"{name} must be (height, width) in patches, got {grid!r}")
    return check_int(f"{name}[0]", grid[0], minimum=1), check_int(f"{name}[1]", grid[1], minimum=1)


def extend_grid(
    weight: Tensor,
    old_grid: tuple[int, int],
    new_grid: tuple[int, int],
    method: str = "bicubic",
    prefix: int = 0,
    *,
    antialias: bool = False,
    std: float = 0.02,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``weight`` ``[P + H*W, d]`` with its grid changed to ``new_grid`` (module doc).

    Args:
        weight: the table, ``prefix`` rows first, then the ``H x W`` grid row-major.
        old_grid: ``(H, W)``.
        new_grid: ``(h, w)``.
        method: one of :data:`GRID_METHODS`.
        prefix: rows in front of the grid (class, distillation tokens), copied untouched.
        antialias: ``bicubic``/``bilinear`` only: low-pass filter when a side shrinks (as
            timm's default, and DINOv2 with registers).
        std: ``pad-random``: the new cells' standard deviation (the table's init).
        generator: ``pad-random``: the random generator.

    Returns:
        ``[P + h*w, d]`` in ``weight``'s dtype; resampling computes in float32 at least.

    Raises:
        ValueError: a shape that does not hold ``prefix + H*W`` rows, an unknown method, a
            method that cannot make the new grid (``crop`` growing, ``pad-random`` shrinking).
    """
    H, W = _check_grid("old_grid", old_grid)
    h, w = _check_grid("new_grid", new_grid)
    check_int("prefix", prefix, minimum=0)
    check_bool("antialias", antialias)
    check_finite("std", std, 0.0)
    if method not in GRID_METHODS:
        raise unknown("grid method", method, GRID_METHODS)
    if weight.dim() != 2 or weight.shape[0] != prefix + H * W:
        raise ValueError(
            f"a table of a {H} x {W} grid with {prefix} prefix rows has {prefix + H * W} rows; "
            f"got shape {tuple(weight.shape)}"
        )
    if method == "crop" and (h > H or w > W):
        raise ValueError(f"crop makes a smaller grid: {h} x {w} is not within {H} x {W}")
    if method == "pad-random" and (h < H or w < W):
        raise ValueError(f"pad-random makes a larger grid: {h} x {w} does not hold {H} x {W}")
    head, cells = weight[:prefix], weight[prefix:]  # [P, d], [H*W, d]
    d = weight.shape[1]
    grid = cells.reshape(H, W, d)  # [H, W, d]
    if method in _RESAMPLE:
        dtype = torch.promote_types(weight.dtype, torch.float32)
        x = grid.permute(2, 0, 1).unsqueeze(0).to(dtype)  # [1, d, H, W]
        y = F.interpolate(x, size=(h, w), mode=method, align_corners=False, antialias=antialias)
        new = y.squeeze(0).permute(1, 2, 0).to(weight.dtype)  # [h, w, d]
    elif method == "tile":
        rows = torch.arange(h) % H
        cols = torch.arange(w) % W
        new = grid[rows][:, cols]  # [h, w, d]
    elif method == "crop":
        new = grid[:h, :w]
    else:  # pad-random
        new = torch.randn(h, w, d, generator=generator, dtype=weight.dtype) * std
        new = new.to(weight.device)
        new[:H, :W] = grid
    return torch.cat([head, new.reshape(h * w, d)], dim=0).clone()


def sincos_grid(grid: tuple[int, int], dim: int, base: float = 10000.0) -> Tensor:
    """A fixed 2-D sinusoidal table ``[H*W, dim]`` (MAE's, He et al. 2022): half the channels
    encode the row, half the column, each as 1-D sinusoids of ``dim / 4`` frequencies.

    Raises:
        ValueError: ``dim`` not a multiple of 4.
    """
    H, W = _check_grid("grid", grid)
    check_int("dim", dim, minimum=4)
    if dim % 4:
        raise ValueError(f"a 2-D sinusoidal table needs dim divisible by 4, got {dim}")
    q = dim // 4
    freq = 1.0 / base ** (torch.arange(q, dtype=torch.float64) / q)  # [q]
    ii, jj = torch.meshgrid(
        torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij"
    )
    parts = []
    for coord in (ii.reshape(-1), jj.reshape(-1)):  # rows, then columns
        angle = coord[:, None] * freq[None, :]  # [H*W, q]
        parts += [torch.sin(angle), torch.cos(angle)]
    return torch.cat(parts, dim=1).float()  # [H*W, dim]


class LearnedGridPositionalEmbedding(nn.Module):
    """A trained vector per patch of an ``H x W`` grid, after ``prefix`` rows for tokens that
    are not patches (a ViT's position table).

    Args:
        grid: ``(H, W)`` patches (an image of ``H * patch`` x ``W * patch`` pixels).
        dim: width ``d``.
        prefix: rows in front (1: a class token; 2: DeiT's class and distillation tokens).
        std: init ``N(0, std^2)`` (ViT: 0.02, truncated in some codebases).

    Example::

        pe = LearnedGridPositionalEmbedding((14, 14), 768, prefix=1)   # ViT-B/16 at 224 px
        pe((14, 14)).shape                     # [197, 768]
        pe((24, 24))                           # GridOutOfRangeError: 24 x 24 is not 14 x 14
        pe.extend((24, 24), "bicubic")((24, 24)).shape                  # [577, 768]
    """

    def __init__(self, grid: tuple[int, int], dim: int, prefix: int = 1, std: float = 0.02) -> None:
        super().__init__()
        self.grid = _check_grid("grid", grid)
        self.prefix = check_int("prefix", prefix, minimum=0)
        self.dim = check_int("dim", dim, minimum=1)
        check_finite("std", std, 0.0)
        self.std = std
        rows = self.prefix + self.grid[0] * self.grid[1]
        self.weight = nn.Parameter(torch.randn(rows, dim) * std)  # [P + H*W, d]

    def forward(self, grid: tuple[int, int] | None = None) -> Tensor:
        """The rows of a sequence of the prefix tokens then ``grid``'s patches:
        ``[P + H*W, d]``.

        Raises:
            GridOutOfRangeError: ``grid`` is not the table's (checked before any reshape).
        """
        if grid is not None and tuple(grid) != self.grid:
            raise GridOutOfRangeError(_check_grid("grid", grid), self.grid)
        return self.weight

    def extend(
        self,
        new_grid: tuple[int, int],
        method: str = "bicubic",
        *,
        antialias: bool = False,
        generator: torch.Generator | None = None,
    ) -> LearnedGridPositionalEmbedding:
        """A new module whose table is this one's on ``new_grid`` (:func:`extend_grid`);
        this one is untouched."""
        with torch.no_grad():
            table = extend_grid(self.weight, self.grid, new_grid, method, self.prefix,
                                antialias=antialias, std=self.std, generator=generator)  # fmt: skip
        new = LearnedGridPositionalEmbedding(new_grid, self.dim, self.prefix, self.std)
        with torch.no_grad():
            new.weight.copy_(table)
        return new.to(self.weight.device)
