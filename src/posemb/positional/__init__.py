"""The positional family: one scheme per file, built by name.

``build_scheme(name, **options)`` builds any scheme. The model passes context it knows
(``dim``, ``n_heads``, ``max_positions``, ``causal``); a scheme takes the parts it needs.
Unknown names and options are ``ValueError`` naming the closest valid one.
"""

from __future__ import annotations

import inspect

from .alibi import ALiBi
from .base import PositionalScheme
from .checks import unknown
from .extend import EXTEND_METHODS, extend_table
from .grid import (
    GRID_METHODS,
    GridOutOfRangeError,
    LearnedGridPositionalEmbedding,
    extend_grid,
    sincos_grid,
)
from .learned import LearnedAbsolutePositionalEmbedding, PositionOutOfRangeError
from .nope import NoPositions
from .rope import RotaryPositionalEmbedding
from .shaw import ShawRelativePosition
from .sinusoidal import SinusoidalPositionalEmbedding
from .t5_bias import T5RelativeBias

REGISTRY: dict[str, type[PositionalScheme]] = {
    "learned": LearnedAbsolutePositionalEmbedding,
    "sinusoidal": SinusoidalPositionalEmbedding,
    "rope": RotaryPositionalEmbedding,
    "alibi": ALiBi,
    "t5": T5RelativeBias,
    "shaw": ShawRelativePosition,
    "nope": NoPositions,
}
SCHEMES: tuple[str, ...] = tuple(REGISTRY)
# Schemes with a table of absolute positions (extend, overflow), for messages; code asks the
# flag (``scheme.has_table``), never the name.
TABLE_SCHEMES: tuple[str, ...] = tuple(n for n, cls in REGISTRY.items() if cls.has_table)
# Schemes that read fractional (float) positions, for messages; code asks the flag.
FRACTIONAL_SCHEMES: tuple[str, ...] = tuple(
    n for n, cls in REGISTRY.items() if cls.fractional_positions
)

# Context the model supplies to every scheme; a scheme's constructor takes those it needs.
CONTEXT_KEYS = ("dim", "n_heads", "head_dim", "max_positions", "causal")


def scheme_options(name: str) -> tuple[str, ...]:
    """The options a scheme accepts besides the model's context."""
    cls = scheme_class(name)
    params = inspect.signature(cls.__init__).parameters
    return tuple(p for p in params if p != "self" and p not in CONTEXT_KEYS)


def scheme_class(name: str) -> type[PositionalScheme]:
    if name not in REGISTRY:
        raise unknown("positional scheme", name, SCHEMES)
    return REGISTRY[name]


def validate_options(name: str, options: dict) -> None:
    """Raise ValueError for an option the scheme does not take."""
    valid = scheme_options(name)
    for key in options:
        if key not in valid and key not in CONTEXT_KEYS:
            err = unknown(f"option for scheme {name!r}", key, valid or ("(none)",))
            raise err


def build_scheme(name: str, **options) -> PositionalScheme:
    """Build a scheme by name.

    Context keys (``dim``, ``n_heads``, ``head_dim``, ``max_positions``, ``causal``) are
    passed only to schemes whose constructor takes them; any other key must be an option of
    the scheme.

    Example::

        build_scheme("learned", max_positions=512, dim=768, init="sinusoidal")
        build_scheme("alibi", n_heads=12)
    """
    cls = scheme_class(name)
    validate_options(name, options)
    params = inspect.signature(cls.__init__).parameters
    kwargs = {k: v for k, v in options.items() if k in params}
    missing = [
        p.name
        for p in params.values()
        if p.name != "self"
        and p.default is inspect.Parameter.empty
        and p.name not in kwargs
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    if missing:
        raise ValueError(
            f"scheme {name!r} needs {', '.join(missing)} (e.g. build_scheme({name!r}, "
            f"{missing[0]}=...))"
        )
    return cls(**kwargs)


__all__ = [
    "EXTEND_METHODS",
    "FRACTIONAL_SCHEMES",
    "GRID_METHODS",
    "SCHEMES",
    "TABLE_SCHEMES",
    "ALiBi",
    "GridOutOfRangeError",
    "LearnedAbsolutePositionalEmbedding",
    "LearnedGridPositionalEmbedding",
    "NoPositions",
    "PositionOutOfRangeError",
    "PositionalScheme",
    "RotaryPositionalEmbedding",
    "ShawRelativePosition",
    "SinusoidalPositionalEmbedding",
    "T5RelativeBias",
    "build_scheme",
    "extend_grid",
    "extend_table",
    "sincos_grid",
]
