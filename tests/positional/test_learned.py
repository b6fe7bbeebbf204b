"""LearnedAbsolutePositionalEmbedding: trained jointly, a clear end, offsets and padding."""

from __future__ import annotations

import pytest
import torch

from posemb.positional.learned import (
    LearnedAbsolutePositionalEmbedding,
    PositionOutOfRangeError,
    position_ids_from_mask,
)
from posemb.positional.sinusoidal import sinusoidal_table


def test_one_optimiser_step_changes_the_table():
    torch.manual_seed(0)
    pe = LearnedAbsolutePositionalEmbedding(16, 8)
    before = pe.weight.detach().clone()
    opt = torch.optim.SGD(pe.parameters(), lr=0.1)
    target = torch.randn(5, 8)
    loss = ((pe(torch.arange(5)) - target) ** 2).sum()
    loss.backward()
    opt.step()
    changed = (pe.weight.detach() != before).any(dim=1)
    assert changed[:5].all(), "rows 0-4 were used and must move"
    assert not changed[5:].any(), "rows never looked up get no gradient"


def test_out_of_range_raises_before_lookup_with_numbers():
    pe = LearnedAbsolutePositionalEmbedding(512, 4)
    with pytest.raises(PositionOutOfRangeError) as info:
        pe(torch.tensor([3, 599, 17]))
    err = info.value
    assert isinstance(err, IndexError)
    assert err.position == 599 and err.max_positions == 512
    msg = str(err)
    assert "position 599 is past the end of the learned table (512 positions: 0–511)" in msg
    for remedy in ("extend", "interpolate", "sliding window", "overflow='clamp'|'wrap'"):
        assert remedy in msg


def test_last_row_is_served_and_first_past_it_is_not():
    pe = LearnedAbsolutePositionalEmbedding(8, 4)
    assert pe(torch.tensor([7])).shape == (1, 4)
    with pytest.raises(PositionOutOfRangeError, match="position 8 is past the end"):
        pe(torch.tensor([8]))


def test_negative_positions_raise():
    pe = LearnedAbsolutePositionalEmbedding(8, 4)
    with pytest.raises(PositionOutOfRangeError, match="position -2 is negative") as info:
        pe(torch.tensor([0, -2]))
    assert info.value.position == -2


def test_clamp_and_wrap_do_what_they_say():
    clamp = LearnedAbsolutePositionalEmbedding(8, 4, overflow="clamp")
    wrap = LearnedAbsolutePositionalEmbedding(8, 4, overflow="wrap")
    wrap.load_state_dict(clamp.state_dict())
    w = clamp.weight.detach()
    torch.testing.assert_close(clamp(torch.tensor([9, 100, -3])), w[[7, 7, 0]])
    torch.testing.assert_close(wrap(torch.tensor([9, 17, -1])), w[[1, 1, 7]])
    assert clamp.position_limit is None and wrap.position_limit is None


def test_offset_rows_are_reserved():
    pe = LearnedAbsolutePositionalEmbedding(6, 4, offset=2)
    assert pe.weight.shape == (8, 4)
    torch.testing.assert_close(pe(torch.tensor([0, 5])), pe.weight.detach()[[2, 7]])
    with pytest.raises(PositionOutOfRangeError, match="6 positions: 0–5"):
        pe(torch.tensor([6]))


def test_left_padding_ids_match_roberta_convention():
    """RoBERTa: pads keep padding_idx (1), real tokens start at padding_idx + 1 (2)."""
    transformers = pytest.importorskip("transformers")
    from transformers.models.roberta.modeling_roberta import RobertaEmbeddings

    pad = 1
    input_ids = torch.tensor([[pad, pad, 5, 6, 7], [5, 6, 7, 8, 9], [5, 6, pad, pad, pad]])
    mask = (input_ids != pad).long()
    create = getattr(RobertaEmbeddings, "create_position_ids_from_input_ids", None)
    if create is None:  # older transformers: a module-level function
        from transformers.models.roberta.modeling_roberta import (
            create_position_ids_from_input_ids as create,
        )
    expected = create(input_ids, pad)
    pe = LearnedAbsolutePositionalEmbedding(16, 4, offset=2)
    rows = pe.table_index(pe.position_ids(attention_mask=mask), mask)
    assert transformers is not None
    torch.testing.assert_close(rows, expected)


def test_position_ids_from_mask_and_past_length():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert position_ids_from_mask(mask).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]
    assert position_ids_from_mask(mask, past_length=3).tolist() == [[1, 2], [3, 4]]
    pe = LearnedAbsolutePositionalEmbedding(16, 4)
    assert pe.position_ids(seq_len=3, past_length=4).tolist() == [[4, 5, 6]]
    with pytest.raises(ValueError, match="needs attention_mask or seq_len"):
        pe.position_ids()


@pytest.mark.parametrize("init", ["normal", "trunc_normal", "zeros", "sinusoidal"])
def test_inits(init):
    torch.manual_seed(0)
    pe = LearnedAbsolutePositionalEmbedding(256, 64, init=init, std=0.02)
    w = pe.weight.detach()
    if init == "normal":
        assert abs(w.std().item() - 0.02) < 0.002
    elif init == "trunc_normal":
        assert w.abs().max().item() <= 0.04 + 1e-7
    elif init == "zeros":
        assert (w == 0).all()
    else:
        torch.testing.assert_close(w, sinusoidal_table(256, 64))


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="unknown init 'xavier'"):
        LearnedAbsolutePositionalEmbedding(8, 4, init="xavier")
    with pytest.raises(ValueError, match="unknown overflow policy"):
        LearnedAbsolutePositionalEmbedding(8, 4, overflow="ignore")
    with pytest.raises(ValueError, match="max_positions must be an integer >= 1"):
        LearnedAbsolutePositionalEmbedding(0, 4)
    with pytest.raises(TypeError, match="integer \\(or float\\) tensor"):
        LearnedAbsolutePositionalEmbedding(8, 4)(torch.tensor([1j]))


def test_error_survives_pickling():
    import pickle

    err = pickle.loads(pickle.dumps(PositionOutOfRangeError(600, 512)))
    assert (err.position, err.max_positions) == (600, 512)


def test_position_ids_from_a_mask_check_past_length_and_seq_len():
    pe = LearnedAbsolutePositionalEmbedding(8, 4)
    mask = torch.tensor([[0, 1, 1, 1]])
    assert pe.position_ids(attention_mask=mask, past_length=2).tolist() == [[1, 2]]
    for past in (5, -1):
        with pytest.raises(ValueError, match=r"past_length must be an integer in \[0, 4\]"):
            pe.position_ids(attention_mask=mask, past_length=past)
    with pytest.raises(ValueError, match="seq_len=7 disagrees with the mask"):
        pe.position_ids(attention_mask=mask, seq_len=7)
    assert pe.position_ids(attention_mask=mask, seq_len=4).tolist() == [[0, 0, 1, 2]]


def test_any_nonzero_mask_value_is_one_real_token():
    mask = torch.tensor([[0, 2, 2, 1], [0.0, 0.5, 1.0, 1.0]])
    assert position_ids_from_mask(mask).tolist() == [[0, 0, 1, 2], [0, 0, 1, 2]]


@pytest.mark.parametrize("method", ["tile", "interpolate", "extrapolate"])
def test_extend_keeps_the_tables_dtype(method):
    pe = LearnedAbsolutePositionalEmbedding(8, 4).to(torch.bfloat16)
    new = pe.extend(16, method)
    assert new.weight.dtype == torch.bfloat16 and new.weight.shape == (16, 4)


def test_offset_lookup_of_no_positions_with_a_mask():
    pe = LearnedAbsolutePositionalEmbedding(8, 4, offset=2)
    assert pe(torch.zeros(1, 0, dtype=torch.long), torch.ones(1, 3)).shape == (1, 0, 4)


# -- fractional positions (the stretch recipe's) ------------------------------------------------
@pytest.mark.parametrize("offset", [0, 2])
def test_integer_valued_float_positions_read_the_plain_rows_bit_for_bit(offset):
    torch.manual_seed(0)
    pe = LearnedAbsolutePositionalEmbedding(8, 4, offset=offset)
    whole = torch.arange(8)
    assert torch.equal(pe(whole.float()), pe(whole))  # the last row included
    assert torch.equal(pe(whole.double()), pe(whole))
    mask = torch.tensor([[0, 0, 1, 1, 1]])
    pos = position_ids_from_mask(mask)
    assert torch.equal(pe(pos.float(), attention_mask=mask), pe(pos, attention_mask=mask))


def test_fractional_positions_mix_the_neighbouring_rows_linearly():
    torch.manual_seed(0)
    pe = LearnedAbsolutePositionalEmbedding(8, 4, offset=2)
    w = pe.weight.detach()[2:]  # the rows of positions 0 .. 7
    half = pe(torch.tensor([0.5, 3.5, 6.5]))
    torch.testing.assert_close(half, (w[[0, 3, 6]] + w[[1, 4, 7]]) / 2)
    quarter = pe(torch.tensor([[2.25]]))  # [1, 1, 4]
    torch.testing.assert_close(quarter[0, 0], 0.75 * w[2] + 0.25 * w[3])
    close_to_end = pe(torch.tensor([6.9]))
    torch.testing.assert_close(close_to_end[0], 0.1 * w[6] + 0.9 * w[7])


def test_fractional_positions_train_both_neighbouring_rows_by_their_weights():
    pe = LearnedAbsolutePositionalEmbedding(8, 3)
    pe(torch.tensor([2.25])).sum().backward()
    grad = pe.weight.grad[:, 0]
    torch.testing.assert_close(grad, torch.tensor([0, 0, 0.75, 0.25, 0, 0, 0, 0]))


def test_fractional_positions_past_the_last_row_or_not_numbers_are_refused():
    pe = LearnedAbsolutePositionalEmbedding(8, 4)
    assert pe(torch.tensor([7.0])).shape == (1, 4)  # the last row itself is served
    with pytest.raises(PositionOutOfRangeError, match="position 7.5 is past the end") as info:
        pe(torch.tensor([1.0, 7.5]))  # 7.5 needs a row 8 the table does not have
    assert info.value.position == 7.5
    with pytest.raises(PositionOutOfRangeError, match="position -0.25 is negative"):
        pe(torch.tensor([-0.25]))
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="positions must be finite numbers"):
            pe(torch.tensor([1.0, bad]))
    with pytest.raises(TypeError, match="integer \\(or float\\) tensor"):
        pe(torch.tensor([True]))


def test_fractional_positions_under_clamp_and_wrap():
    torch.manual_seed(0)
    clamp = LearnedAbsolutePositionalEmbedding(8, 4, overflow="clamp")
    wrap = LearnedAbsolutePositionalEmbedding(8, 4, overflow="wrap")
    wrap.load_state_dict(clamp.state_dict())
    w = clamp.weight.detach()
    torch.testing.assert_close(clamp(torch.tensor([9.5, -1.5])), w[[7, 0]])
    torch.testing.assert_close(wrap(torch.tensor([7.5]))[0], (w[7] + w[0]) / 2)  # wraps to row 0
    torch.testing.assert_close(wrap(torch.tensor([9.5]))[0], (w[1] + w[2]) / 2)
