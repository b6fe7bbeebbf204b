"""The example experiment files shipped with posemb: ``posemb train --config NAME``.

Each ``NAME.toml`` here is a small commented TOML experiment. They are package data, so
after a plain ``pip install`` ``posemb train --config tiny-learned`` finds one by its name
(with or without ``.toml``), and ``importlib.resources.files("posemb.configs")`` lists
them. In a checkout of the repository, the top-level ``configs/`` is a link to this folder,
so ``--config configs/tiny-learned.toml`` works there too.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def names() -> list[str]:
    """The shipped configs' names, without ``.toml``, sorted."""
    return sorted(
        p.name[: -len(".toml")] for p in files(__name__).iterdir() if p.name.endswith(".toml")
    )


def shipped(name: str) -> Path | None:
    """The shipped config called ``name`` (``tiny-learned`` or ``tiny-learned.toml``), else None."""
    stem = name[: -len(".toml")] if name.endswith(".toml") else name
    if stem not in names():
        return None
    return Path(str(files(__name__).joinpath(f"{stem}.toml")))
