"""The diagnostics on tables with known answers (hand-derivable or built from the formula)."""

from __future__ import annotations

import math

import pytest
import torch

from posemb.analysis.summary import analyze_table, plain_reading
from posemb.analysis.table import (
    adjacent_cosine,
    cosine_by_distance,
    cosine_similarity_matrix,
    dominant_offsets,
    format_ranges,
    nearest_neighbor_offsets,
    pca,
    row_norms,
    spectrum,
    to_ranges,
    untrained_rows,
    untrained_rows_heuristic,
)
from posemb.positional.sinusoidal import sinusoidal_table


def circle(n: int = 64, d: int = 8, period: float = 16.0) -> torch.Tensor:
    """Rows on a circle in the first two dims: ``P[i] = (cos 2πi/p, sin 2πi/p, 0, …)``."""
    angle = 2 * math.pi * torch.arange(n, dtype=torch.float64) / period
    w = torch.zeros(n, d, dtype=torch.float64)
    w[:, 0], w[:, 1] = torch.cos(angle), torch.sin(angle)
    return w


def test_cosine_matrix_of_circle_depends_only_on_distance():
    # cos(P[i], P[j]) = cos(2π (j - i) / p) for unit rows on a circle
    w = circle()
    sims = cosine_similarity_matrix(w)
    i, j = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    expected = torch.cos(2 * math.pi * (j - i).double() / 16.0)
    torch.testing.assert_close(sims, expected, atol=1e-12, rtol=0)
    assert sims.dtype == torch.float64
    torch.testing.assert_close(
        adjacent_cosine(w),
        torch.full((63,), math.cos(2 * math.pi / 16), dtype=torch.float64),
        atol=1e-12,
        rtol=0,
    )
    torch.testing.assert_close(
        cosine_by_distance(w, 4), torch.cos(2 * math.pi * torch.arange(5.0).double() / 16)
    )


def test_pca_of_circle_is_two_dimensional():
    res = pca(circle() * 3.0 + 1.0)  # scale and shift do not change the shares
    ratio = res.explained_variance_ratio
    assert float(ratio[:2].sum()) == pytest.approx(1.0, abs=1e-12)
    assert float(ratio[0]) == pytest.approx(
        0.5, abs=1e-9
    )  # a full circle: equal variance both ways
    radius = res.projections[:, :2].norm(dim=1)
    torch.testing.assert_close(
        radius, torch.full((64,), 3.0, dtype=torch.float64)
    )  # the trajectory is the circle


def test_orthogonal_rows():
    # n orthonormal rows: cosine = identity; centring leaves n - 1 equal components (1/(n-1) each)
    n, d = 8, 16
    q, _ = torch.linalg.qr(
        torch.randn(d, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    )
    w = q[:n]
    torch.testing.assert_close(
        cosine_similarity_matrix(w), torch.eye(n, dtype=torch.float64), atol=1e-12, rtol=0
    )
    ratio = pca(w, k=3).explained_variance_ratio
    torch.testing.assert_close(
        ratio[: n - 1], torch.full((n - 1,), 1 / (n - 1), dtype=torch.float64)
    )
    assert float(ratio[n - 1 :].sum()) == pytest.approx(0.0, abs=1e-12)
    torch.testing.assert_close(row_norms(w), torch.ones(n, dtype=torch.float64))
    h = untrained_rows_heuristic(w)  # nothing smooth to compare with: no verdict
    assert not h.smooth and h.rows == []


def test_sinusoidal_table_structure():
    w = sinusoidal_table(128, 64)
    offsets = nearest_neighbor_offsets(w)
    assert set(offsets.abs().tolist()) == {1}  # every row's nearest neighbour is adjacent
    top = dominant_offsets(offsets, 2)
    assert {t["offset"] for t in top} == {-1, 1} and sum(t["count"] for t in top) == 128
    a = analyze_table(w)
    assert a.to_json()["nearest_neighbor_offsets"]["fraction_adjacent"] == 1.0
    assert float(a.adjacent.mean()) > 0.9
    assert a.untrained_method == "heuristic" and a.untrained == []
    assert "similar" in plain_reading(a)[1]


def test_nearest_neighbor_offsets_chunked_equals_full():
    w = torch.randn(50, 6, generator=torch.Generator().manual_seed(1))
    sims = cosine_similarity_matrix(w).fill_diagonal_(-2.0)
    expected = sims.argmax(dim=1) - torch.arange(50)
    assert torch.equal(nearest_neighbor_offsets(w, chunk=7), expected)
    among = torch.arange(50) % 3 != 0  # only these rows, and only them as neighbours
    sims[:, ~among] = -2.0
    expected = (sims.argmax(dim=1) - torch.arange(50))[among]
    assert torch.equal(nearest_neighbor_offsets(w, among=among, chunk=4), expected)


@pytest.mark.parametrize("k", [5, 7.5])  # on a frequency bin, and between two bins
def test_spectrum_finds_the_frequency_of_a_sinusoid(k):
    n = 64
    i = torch.arange(n, dtype=torch.float64)
    w = torch.randn(n, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.01
    w[:, 2] = torch.cos(2 * math.pi * k * i / n + 0.3)  # frequency k/n cycles per position
    spec = spectrum(w)
    assert spec.magnitude.shape == (4, n // 2 + 1)
    assert abs(float(spec.dominant_frequency[2]) - k / n) <= 0.5 / n
    assert abs(float(spec.dominant_period[2]) - n / k) <= 1.0
    assert float(spec.peak_energy_fraction[2]) > 0.8
    assert float(spec.peak_energy_fraction[0]) < 0.5  # noise has no single peak


def test_untrained_rows_exact_equality_has_no_tolerance():
    init = torch.randn(10, 4, generator=torch.Generator().manual_seed(0))
    w = init.clone()
    w[:3] += 0.1
    w[5, 1] = torch.nextafter(w[5, 1], torch.tensor(math.inf))  # one ulp: moved
    assert untrained_rows(w, init) == [3, 4, 6, 7, 8, 9]


def test_heuristic_finds_random_tail_of_a_smooth_table():
    w = sinusoidal_table(256, 64)
    w[200:] = (
        torch.randn(56, 64, generator=torch.Generator().manual_seed(0)) * 0.5
    )  # rows left at a random init
    w[0] = -w[0]  # one odd row (like GPT-2's position 0) is not a region
    h = untrained_rows_heuristic(w)
    assert h.smooth and h.rows == list(range(200, 256))
    a = analyze_table(w)
    reading = plain_reading(a)
    assert "heuristic" in reading[0] and "200–255" in reading[0]
    s = a.to_json()
    assert s["untrained"]["method"] == "heuristic"
    assert (
        s["nearest_neighbor_offsets"]["trained_rows_only"]["fraction_adjacent"] > 0.95
    )  # the smooth part


def test_zero_rows_count_as_untrained_by_the_heuristic():
    w = sinusoidal_table(64, 16)
    w[40:] = 0.0  # init="zeros": rows past T stay exactly zero
    assert untrained_rows_heuristic(w).rows == list(range(40, 64))


def test_offset_rows_are_excluded_and_reported():
    table = torch.cat([torch.full((2, 16), 9.0), sinusoidal_table(30, 16)])
    a = analyze_table(table, offset=2, initial=table.clone())
    s = a.to_json()
    assert (s["n_rows"], s["offset"], s["table_rows"]) == (30, 2, 32)
    assert s["reserved"]["rows"] == [0, 1] and s["reserved"]["untrained"] == [0, 1]
    assert s["untrained"]["rows"] == list(range(30))  # positions, not table rows
    with pytest.raises(ValueError, match="fewer than 2 positions"):
        analyze_table(table, offset=31)


def test_ranges():
    assert to_ranges([9, 3, 4, 5]) == [(3, 5), (9, 9)]
    assert format_ranges([3, 4, 5, 9]) == "3–5, 9"
    assert format_ranges([]) == ""


def test_bad_tables_are_value_errors():
    with pytest.raises(ValueError, match="2-D"):
        pca(torch.zeros(4))
    with pytest.raises(ValueError, match="non-finite"):
        row_norms(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]))
