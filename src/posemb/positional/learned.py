"""Learnable absolute positional embeddings: the core of posemb.

A table ``P`` of shape ``[offset + max_positions, d]`` is a parameter trained jointly with
the model; the first block sees ``x_i = E[token_i] + P[offset + i]`` (GPT-2, BERT: offset 0;
RoBERTa, OPT, BART: offset 2, the first two rows reserved).

The table has an end. Position ``max_positions`` has no row, and this module makes that a
contract: with ``overflow="error"`` (default) an out-of-range or negative position raises
:class:`PositionOutOfRangeError` *before* the lookup, on every device, naming the position,
the table size and the remedies. ``"clamp"`` and ``"wrap"`` are explicit alternatives.

Positions may be fractional (a float tensor): position ``p`` reads
``(1 - w) * P[floor p] + w * P[floor p + 1]`` with ``w = p - floor p``, the linear mix of
the two neighbouring rows, which is exactly the row ``P[p]`` at an integer ``p``. The
``stretch`` training recipe (``train.positions=stretch``) trains the table at such
positions so that a table resampled with ``interpolate`` (which reads the trained table at
the same fractional positions) is used in distribution past the training length.

Notation: ``b`` batch, ``t`` length, ``d`` width.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from .base import PositionalScheme
from .checks import check_finite, check_int, is_int
from .extend import EXTEND_METHODS, check_extension_fits, extend_table
from .memory import check_fits, tensor_bytes
from .sinusoidal import sinusoidal_table

Init = Literal["normal", "trunc_normal", "zeros", "sinusoidal"]
Overflow = Literal["error", "clamp", "wrap"]
INITS: tuple[str, ...] = ("normal", "trunc_normal", "zeros", "sinusoidal")
OVERFLOWS: tuple[str, ...] = ("error", "clamp", "wrap")


class PositionOutOfRangeError(IndexError):
    """A position the learned table has no row for.

    Attributes:
        position: the offending position (the largest one asked for, or the most negative).
        max_positions: the number of positions the table serves (``0 .. max_positions-1``).
    """

    def __init__(self, position: float, max_positions: int, remedies: str | None = None) -> None:
        # an integer position stays an int; a fractional one (2.5) keeps its fraction
        integral = isinstance(position, int) or float(position).is_integer()
        self.position = int(position) if integral else float(position)
        self.max_positions = int(max_positions)
        self.remedies = remedies
        remedies = remedies or (
            "Extend the table (LearnedAbsolutePositionalEmbedding.extend or posemb.extend_table,"
            f" methods: {', '.join(EXTEND_METHODS)}), evaluate with a sliding window"
            " (posemb eval --mode sliding), or choose overflow='clamp'|'wrap'."
        )
        if self.position < 0:
            what = f"position {self.position} is negative: positions start at 0"
            remedies = "Build position ids with position_ids() (left-padding aware)."
        else:
            what = f"position {self.position} is past the end of the learned table"
        super().__init__(
            f"{what} ({self.max_positions} positions: 0–{self.max_positions - 1}). {remedies}"
        )

    def __reduce__(self):  # keep it picklable across processes (DataLoader workers, DDP)
        return (type(self), (self.position, self.max_positions, self.remedies))


def position_ids_from_mask(attention_mask: Tensor, past_length: int = 0) -> Tensor:
    """Positions that skip padding: the first real token of each row gets ``past_length``.

    Padded slots don't consume positions (HF OPT/BLOOM, fairseq); they get ``past_length``
    (any in-range value: attention masks them out).

    Args:
        attention_mask: ``[b, s]`` with 1 for real tokens, 0 for padding; ``s`` may include
            a cached prefix of ``past_length`` slots (only the last ``s - past_length`` ids
            are returned then).
        past_length: slots already in the cache.

    Returns:
        LongTensor ``[b, s - past_length]``.

    Example: mask ``[0, 0, 1, 1, 1]`` -> positions ``[0, 0, 0, 1, 2]``.
    """
    mask = (attention_mask != 0).to(torch.long)  # any nonzero value is a real token
    pos = mask.cumsum(-1) - 1  # [b, s]: index among real tokens
    pos = pos.clamp_min(0) * mask  # padded slots -> 0
    return pos[:, past_length:]


class LearnedAbsolutePositionalEmbedding(PositionalScheme):
    """A trainable ``[offset + max_positions, dim]`` table added to the token embeddings.

    Args:
        max_positions: positions served, ``0 .. max_positions-1``.
        dim: width ``d``.
        init: ``"normal"`` (std 0.02, as GPT-2), ``"trunc_normal"`` (±2 std, as ViT),
            ``"zeros"``, or ``"sinusoidal"`` (start from the fixed table, then learn).
        std: standard deviation for the random inits.
        offset: reserved leading rows (RoBERTa/OPT/BART: 2). Logical position ``p`` reads row
            ``offset + p``; padded slots read row ``offset - 1`` (the ``padding_idx``).
        overflow: ``"error"`` raises :class:`PositionOutOfRangeError`; ``"clamp"`` maps
            positions past the end to the last row (and negatives to 0); ``"wrap"`` takes
            them modulo ``max_positions``.

    Example::

        pe = LearnedAbsolutePositionalEmbedding(512, 768)
        pe(torch.arange(10))            # [10, 768]
        pe(torch.tensor([599]))         # PositionOutOfRangeError: position 599 is past ...
    """

    name = "learned"
    adds_to_input = True
    has_table = True
    fractional_positions = True  # a float position mixes its two neighbouring rows

    def __init__(
        self,
        max_positions: int,
        dim: int,
        *,
        init: Init = "normal",
        std: float = 0.02,
        offset: int = 0,
        overflow: Overflow = "error",
    ) -> None:
        super().__init__()
        check_int("max_positions", max_positions, minimum=1)
        check_int("dim", dim, minimum=1)
        check_int("offset", offset, minimum=0)
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
        if overflow not in OVERFLOWS:
            raise ValueError(
                f"unknown overflow policy {overflow!r}; choose one of {', '.join(OVERFLOWS)}"
            )
        check_finite("std", std, 0)
        rows = offset + max_positions
        check_fits(
            tensor_bytes(rows * dim),
            f"a learned position table of {rows} x {dim} (max_positions x dim)",
            "lower max_positions (model.max_positions) or dim (model.d_model)",
        )
        self.max_positions, self.dim, self.offset = max_positions, dim, offset
        self.init, self.std, self.overflow = init, float(std), overflow
        self.weight = nn.Parameter(torch.empty(offset + max_positions, dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            if self.init == "normal":
                self.weight.normal_(0.0, self.std)
            elif self.init == "trunc_normal":
                nn.init.trunc_normal_(self.weight, 0.0, self.std, -2 * self.std, 2 * self.std)
            elif self.init == "zeros":
                self.weight.zero_()
            else:
                self.weight.copy_(sinusoidal_table(self.offset + self.max_positions, self.dim))

    # -- position ids ---------------------------------------------------------------------
    def position_ids(
        self,
        attention_mask: Tensor | None = None,
        seq_len: int | None = None,
        past_length: int = 0,
    ) -> Tensor:
        """Logical positions for a batch (add nothing for ``offset``: lookup does that).

        Args:
            attention_mask: ``[b, s]`` 1/0 mask (left padding allowed; ``s`` may include the
                ``past_length`` cached slots). Padding doesn't consume positions.
            seq_len: length ``t`` when there is no mask.
            past_length: tokens already in the KV cache.

        Returns:
            LongTensor ``[b, t]`` from a mask, ``[1, t]`` from ``seq_len``. Not range-checked
            here: the lookup checks.
        """
        if attention_mask is not None:
            check_attention_mask(attention_mask)
            if attention_mask.dim() != 2:
                raise ValueError(
                    "attention_mask must be [batch, length], got shape "
                    f"{tuple(attention_mask.shape)}"
                )
            s = attention_mask.shape[1]
            if not is_int(past_length) or not 0 <= past_length <= s:
                raise ValueError(
                    f"past_length must be an integer in [0, {s}]: the mask covers the cached "
                    f"slots too ([batch, past_length + new]), got past_length={past_length!r} for "
                    f"a mask of length {s}"
                )
            if seq_len is not None and seq_len != s - past_length:
                raise ValueError(
                    f"seq_len={seq_len!r} disagrees with the mask: {s} slots - past_length "
                    f"{past_length} = "
                    f"{s - past_length} new tokens; pass the mask alone"
                )
            return position_ids_from_mask(attention_mask, past_length)
        if seq_len is None:
            raise ValueError("position_ids() needs attention_mask or seq_len")
        check_int("seq_len", seq_len, minimum=0)
        check_int("past_length", past_length, minimum=0)
        return torch.arange(
            past_length, past_length + seq_len, device=self.weight.device
        ).unsqueeze(0)

    def table_index(self, positions: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Rows of the table for logical positions, after the overflow policy.

        With ``offset > 0`` and a mask, padded slots read row ``offset - 1`` (RoBERTa's
        ``padding_idx``) and real tokens start at row ``offset``.
        """
        return self._rows(positions, attention_mask, checked=False)

    def _rows(self, positions: Tensor, attention_mask: Tensor | None, checked: bool) -> Tensor:
        return self._offset_rows(self._apply_overflow(positions, checked), attention_mask)

    def _offset_rows(self, positions: Tensor, attention_mask: Tensor | None) -> Tensor:
        """Table rows of in-range integer positions: ``offset`` added, padding's row set."""
        rows = positions + self.offset
        if attention_mask is not None and self.offset > 0:
            mask = attention_mask[..., attention_mask.shape[-1] - positions.shape[-1] :].to(
                torch.bool
            )
            rows = torch.where(mask, rows, torch.full_like(rows, self.offset - 1))
        return rows

    def _apply_overflow(self, positions: Tensor, checked: bool = False) -> Tensor:
        if self.overflow == "clamp":
            return positions.clamp(0, self.max_positions - 1)
        if self.overflow == "wrap":
            return torch.remainder(positions, self.max_positions)
        if not checked and not torch.compiler.is_compiling():
            # Eager: read the values and raise before the lookup (never an IndexError from
            # inside torch, never a device-side assert). Under torch.compile the model checks
            # host-side bounds (check_position_range) so the graph stays whole.
            self.check_positions(positions)
        return positions

    # -- range contract -----------------------------------------------------------------------
    @property
    def position_limit(self) -> int | None:
        return self.max_positions if self.overflow == "error" else None

    def check_position_range(self, lowest: float, highest: float) -> None:
        if self.overflow != "error":
            return
        if lowest < 0:
            raise PositionOutOfRangeError(lowest, self.max_positions)
        if highest > self.max_positions - 1:  # 62.5 is served by a 64-row table, 63.5 is not
            raise PositionOutOfRangeError(highest, self.max_positions)

    # -- hook 1 ------------------------------------------------------------------------------------
    def embed_positions(self, positions: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        # the hook: the model has already checked the range (from ints when it built the
        # positions itself), so the values are not read back a second time
        return self._lookup(positions, attention_mask, checked=True)

    def _lookup(self, positions: Tensor, attention_mask: Tensor | None, checked: bool) -> Tensor:
        """``[...]`` positions -> ``[..., dim]`` rows; floats mix their two neighbouring rows."""
        if not positions.is_floating_point():
            return nn.functional.embedding(
                self._rows(positions, attention_mask, checked), self.weight
            )
        p = self._apply_overflow(positions, checked)
        below = p.floor()
        frac = p - below  # [...]: the weight of the row above
        i0 = below.long()
        i1 = i0 + 1
        # the last row has no row above: it is read with weight 0 (a clamp keeps the index
        # valid); wrapping continues with row 0
        i1 = (
            torch.remainder(i1, self.max_positions)
            if self.overflow == "wrap"
            else i1.clamp(max=self.max_positions - 1)
        )
        if attention_mask is not None and self.offset > 0:  # padding reads its row exactly
            mask = attention_mask[..., attention_mask.shape[-1] - p.shape[-1] :].to(torch.bool)
            frac = torch.where(mask, frac, torch.zeros_like(frac))
        w = frac.unsqueeze(-1).to(self.weight.dtype)  # [..., 1]
        lower = nn.functional.embedding(self._offset_rows(i0, attention_mask), self.weight)
        upper = nn.functional.embedding(self._offset_rows(i1, attention_mask), self.weight)
        # (1 - 0) * P[i] + 0 * P[i+1] is P[i] exactly: integer positions read the plain rows
        return (1 - w) * lower + w * upper  # [..., dim]

    def forward(
        self, positions: Tensor | list[int] | tuple[int, ...], attention_mask: Tensor | None = None
    ) -> Tensor:
        """positions LongTensor ``[...]`` (or a list/tuple of ints) -> ``[..., dim]``.

        A float tensor reads fractional positions: ``pe(torch.tensor([2.5]))`` is the mean of
        rows 2 and 3 (see the module docstring).
        """
        if isinstance(positions, (list, tuple)):
            positions = _positions_from_sequence(positions, self.weight.device)
        if not isinstance(positions, Tensor):
            raise TypeError(
                "positions must be an integer tensor or a list of ints (e.g. pe([0, 1, 2])), "
                f"got {type(positions).__name__}"
            )
        if positions.dtype not in (torch.int64, torch.int32):
            if not positions.is_floating_point():
                raise TypeError(
                    f"positions must be an integer (or float) tensor, got {positions.dtype}"
                )
            check_finite_positions(positions)
        if attention_mask is not None:
            check_attention_mask(attention_mask)
        return self._lookup(positions, attention_mask, checked=False)

    # -- the table and its extension --------------------------------------------------------------
    @property
    def table(self) -> Tensor:
        """The ``[offset + max_positions, dim]`` parameter (reserved rows first)."""
        return self.weight

    def extend(
        self,
        new_max: int,
        method: str = "interpolate",
        *,
        overflow: Overflow | None = None,
        **options,
    ) -> LearnedAbsolutePositionalEmbedding:
        """A new module serving ``new_max`` positions; this one is left untouched.

        Reserved offset rows are kept exactly. See :func:`posemb.extend_table` for methods
        and their ``options``; fresh ``random`` rows are drawn with this table's init ``std``
        unless ``std`` is given. ``new_max`` below ``max_positions`` crops the table, and
        equal to it copies it (with ``overflow``: the same table under another policy).

        Example::

            pe.extend(4096, "interpolate")        # 4096 positions, the old ones resampled
            pe.extend(pe.max_positions, overflow="clamp")   # same rows, clamp past the end
        """
        check_int("new_max", new_max, minimum=1)
        if method == "random":
            options.setdefault("std", self.std)  # fresh rows drawn like this table's init
        # refused naming the length asked for, before the new module allocates its table
        check_extension_fits(self.weight, self.offset + new_max, method)
        new = LearnedAbsolutePositionalEmbedding(
            new_max,
            self.dim,
            init=self.init,
            std=self.std,
            offset=self.offset,
            overflow=self.overflow if overflow is None else overflow,
        )
        with torch.no_grad():
            table = extend_table(
                self.weight.detach(), self.offset + new_max, method, offset=self.offset, **options
            )
            new.weight.copy_(table)
        return new.to(device=self.weight.device, dtype=self.weight.dtype)

    def extra_repr(self) -> str:
        return (
            f"max_positions={self.max_positions}, dim={self.dim}, offset={self.offset}, "
            f"init={self.init!r}, overflow={self.overflow!r}"
        )


def check_finite_positions(positions: Tensor) -> None:
    """Fractional positions must be numbers: NaN or inf is a ValueError naming it.

    Reads the values (one host sync); callers skip it under ``torch.compile``.
    """
    if positions.numel() and not bool(torch.isfinite(positions).all()):
        bad = positions[~torch.isfinite(positions)].flatten()[0].item()
        raise ValueError(f"positions must be finite numbers, got {bad}")


def check_attention_mask(attention_mask: object) -> None:
    """An attention mask holds 1 (a token) and 0 (padding) only: bool, integer or float.

    Reads the values (one host sync); callers skip it under ``torch.compile``.
    """
    if not isinstance(attention_mask, Tensor):
        raise TypeError(
            "attention_mask must be a tensor [batch, length] of 1 (token) and 0 (padding), "
            f"got {type(attention_mask).__name__}"
        )
    if attention_mask.dtype == torch.bool or attention_mask.numel() == 0:
        return
    if not bool(((attention_mask == 0) | (attention_mask == 1)).all()):
        bad = attention_mask[(attention_mask != 0) & (attention_mask != 1)].flatten()[0].item()
        raise ValueError(
            f"attention_mask must hold 1 (token) and 0 (padding) only, got the value {bad}; "
            "build it as (ids != pad_id).long()"
        )


def _positions_from_sequence(values: list | tuple, device: torch.device) -> Tensor:
    if not all(is_int(v) for v in _flatten(values)):
        raise TypeError(
            f"positions given as a list must hold ints only (e.g. [0, 1, 2]), got {values!r:.80}"
        )
    try:
        return torch.tensor(values, dtype=torch.long, device=device)
    except (ValueError, RuntimeError, OverflowError) as e:
        raise ValueError(
            f"positions must be a (nested) list of ints of one shape, got {values!r:.80} ({e})"
        ) from None


def _flatten(values):
    for v in values:
        if isinstance(v, (list, tuple)):
            yield from _flatten(v)
        else:
            yield v
