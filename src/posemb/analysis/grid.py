"""The picture of a 2-D table: what a vision transformer learned about its patches.

Dosovitskiy et al. 2021 (ViT), Fig. 7: each patch's position row compared with every other
patch's (cosine similarity), drawn as a grid of small heat maps, one per patch, each laid out
as the image. A trained ViT's maps show a bright spot at the patch itself and fainter
stripes along its row and column: the table learned the image's 2-D geometry from 1-D
rows. :func:`axis_similarity` puts that in numbers: the mean cosine of two patches by how
many rows and columns apart they are.

Notation: ``H x W`` the grid, ``d`` width.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ..figures import new_figure, save_png
from .table import as_float64


def grid_similarity(cells: Tensor, grid: tuple[int, int]) -> Tensor:
    """``[H*W, d]`` patch rows (row-major) -> ``[H, W, H, W]``: the cosine similarity of patch
    ``(i, j)`` with patch ``(k, l)`` (float64)."""
    H, W = grid
    if cells.shape[0] != H * W:
        raise ValueError(f"a {H} x {W} grid has {H * W} rows, got {cells.shape[0]}")
    u = as_float64(cells)
    u = u / u.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return (u @ u.T).reshape(H, W, H, W)


def axis_similarity(sim: Tensor) -> dict[str, list[float]]:
    """Mean cosine of two patches ``dr`` rows apart in the same column (``by_row_offset``)
    and ``dc`` columns apart in the same row (``by_col_offset``), from
    :func:`grid_similarity`'s ``[H, W, H, W]``; offset 0 is 1."""
    H, W = sim.shape[0], sim.shape[1]
    rows = [
        float(torch.stack([sim[i, j, i + dr, j] for i in range(H - dr) for j in range(W)]).mean())
        for dr in range(H)
    ]
    cols = [
        float(torch.stack([sim[i, j, i, j + dc] for i in range(H) for j in range(W - dc)]).mean())
        for dc in range(W)
    ]
    return {"by_row_offset": rows, "by_col_offset": cols}


def grid_sentence(axes: dict[str, list[float]], grid: tuple[int, int]) -> str:
    """What the grid learned, in a sentence."""
    H, W = grid
    r, c = axes["by_row_offset"], axes["by_col_offset"]
    near = (r[1] if H > 1 else float("nan"), c[1] if W > 1 else float("nan"))
    far = (r[-1], c[-1])
    shape = (
        "the table learned the image's two dimensions: patches one row or column apart are "
        "more alike than patches across the image"
        if min(near) > max(far) + 0.1
        else "neighbouring patches are not much more alike than distant ones: the table shows "
        "little of the image's geometry"
    )
    return (
        f"The {H} x {W} patch rows: cosine similarity {near[0]:.2f} one row apart and "
        f"{near[1]:.2f} one column apart, {far[0]:.2f} and {far[1]:.2f} across the image; "
        f"{shape}."
    )


def plot_grid_of_grids(sim: Tensor, path: str | Path, title: str = "") -> Path:
    """The ViT picture: an ``H x W`` grid of small ``H x W`` heat maps, the one at ``(i, j)``
    the cosine of patch ``(i, j)`` with every patch (shared colour scale)."""
    H, W = sim.shape[0], sim.shape[1]
    size = max(4.0, min(12.0, 0.55 * max(H, W)))
    fig = new_figure(size, size * H / W + 0.6)
    axes = fig.subplots(H, W, squeeze=False)
    image = None
    for i in range(H):
        for j in range(W):
            ax = axes[i][j]
            image = ax.imshow(sim[i, j].numpy(), vmin=-1, vmax=1, cmap="viridis")
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(str(i + 1), rotation=0, fontsize=6, labelpad=6)
            if i == H - 1:
                ax.set_xlabel(str(j + 1), fontsize=6)
    fig.suptitle(title or "Cosine similarity of each patch's position row with every patch")
    fig.supxlabel("input patch column", fontsize=8)
    fig.supylabel("input patch row", fontsize=8)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, label="cosine similarity")
    return save_png(fig, path)
