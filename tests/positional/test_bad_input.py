"""Bad input to the positional layer: a clear ValueError/TypeError naming what is wanted.

- sizes nobody can allocate are refused before allocating, with the estimate in GiB and
  the memory available (docs/DESIGN.md, "Reliability rules");
- every extension method refuses a table with NaN or inf (not only ``extrapolate``);
- positions may be a list of ints; attention masks must hold 0 and 1 only.
"""

from __future__ import annotations

import pytest
import torch

from posemb import EXTEND_METHODS, LearnedAbsolutePositionalEmbedding, extend_table
from posemb.positional import memory
from posemb.positional.memory import SizeTooLargeError
from posemb.positional.shaw import ShawRelativePosition
from posemb.positional.t5_bias import T5RelativeBias

BIG = 10**12


@pytest.mark.parametrize(
    "build, needle",
    [
        (lambda: LearnedAbsolutePositionalEmbedding(BIG, 768), "max_positions"),
        (lambda: LearnedAbsolutePositionalEmbedding(512, BIG), "dim"),
        (lambda: ShawRelativePosition(8, max_distance=BIG), "max_distance"),
        (lambda: T5RelativeBias(4, num_buckets=BIG, max_distance=2 * BIG), "num_buckets"),
    ],
    ids=["learned-rows", "learned-dim", "shaw", "t5"],
)
def test_tables_nobody_can_allocate_are_refused_with_the_estimate(build, needle):
    with pytest.raises(SizeTooLargeError, match=r"needs at least [\d.e+,]+ GiB") as e:
        build()
    assert needle in str(e.value) and "available" in str(e.value)


def test_the_refusal_comes_before_the_allocation(monkeypatch):
    """A 4 MiB table on a machine with 1 MiB free: refused, though it could be allocated here."""
    monkeypatch.setattr(memory, "_host_available", lambda: 2**20)
    with pytest.raises(SizeTooLargeError, match=r"0\.00391 GiB, more than the 0\.000977 GiB"):
        LearnedAbsolutePositionalEmbedding(1024, 1024)  # 4 MiB of float32
    monkeypatch.setattr(memory, "_host_available", lambda: 2**23)
    LearnedAbsolutePositionalEmbedding(1024, 1024)  # 8 MiB free: fits


def test_extend_table_to_a_size_nobody_can_allocate(monkeypatch):
    table = torch.randn(16, 8)
    with pytest.raises(SizeTooLargeError, match=r"new_len.*--to") as e:
        extend_table(table, BIG, "tile")
    assert "GiB" in str(e.value)
    monkeypatch.setattr(memory, "_host_available", lambda: 2**20)
    with pytest.raises(SizeTooLargeError):  # 48 MiB of float32 + float64 work space
        extend_table(table, 2**20, "interpolate")
    assert extend_table(table, 64, "interpolate").shape == (64, 8)  # small ones still pass


@pytest.mark.parametrize("method", EXTEND_METHODS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_every_extension_method_refuses_a_non_finite_table(method, bad):
    table = torch.randn(8, 4)
    table[3, 1] = bad
    with pytest.raises(ValueError, match=rf"NaN or inf.*{method}"):
        extend_table(table, 16, method)


def test_positions_as_a_list_of_ints():
    torch.manual_seed(0)
    pe = LearnedAbsolutePositionalEmbedding(16, 4)
    assert torch.equal(pe([1, 2]), pe(torch.tensor([1, 2])))
    assert torch.equal(pe(((0, 1), (2, 3))), pe(torch.tensor([[0, 1], [2, 3]])))


@pytest.mark.parametrize(
    "positions, error, needle",
    [
        ([1.5, 2], TypeError, "ints only"),
        ([True, 2], TypeError, "ints only"),
        ("01", TypeError, "list of ints"),
        ([[0, 1], [2]], ValueError, "one shape"),
    ],
)
def test_positions_that_are_not_ints_say_what_is_wanted(positions, error, needle):
    pe = LearnedAbsolutePositionalEmbedding(16, 4)
    with pytest.raises(error, match=needle):
        pe(positions)


@pytest.mark.parametrize("value", [float("nan"), 2.0, -1.0, 0.5])
def test_attention_masks_hold_zero_and_one_only(value):
    pe = LearnedAbsolutePositionalEmbedding(16, 4)
    mask = torch.ones(2, 5)
    mask[1, 0] = value
    with pytest.raises(ValueError, match=r"attention_mask must hold 1 \(token\) and 0"):
        pe.position_ids(attention_mask=mask)
    with pytest.raises(ValueError, match=r"attention_mask must hold 1 \(token\) and 0"):
        pe(torch.arange(5).expand(2, 5), attention_mask=mask)


def test_valid_masks_of_every_dtype_pass():
    pe = LearnedAbsolutePositionalEmbedding(16, 4)
    want = torch.tensor([[0, 0, 0, 1, 2]])
    for dtype in (torch.bool, torch.long, torch.float32):
        mask = torch.tensor([[0, 0, 1, 1, 1]]).to(dtype)
        assert torch.equal(pe.position_ids(attention_mask=mask), want)
