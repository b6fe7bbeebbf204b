"""The layers of docs/DESIGN.md, for every package and module of posemb, and the model's
positional surface.

- Every top-level package or module of ``posemb`` has a layer (:data:`LAYERS`); a module may
  import only from layers below its own, and from its own package. Peers of one layer never
  import each other (``train``, ``eval`` and ``analysis`` meet only in ``experiments``). The
  allowed exceptions are named in :data:`CALL_TIME`: imports inside a function, upward.
- Outside ``model/`` and ``positional/``, nothing reaches into a model's scheme modules
  (``model.pos``, ``model.layer_pos``, state-dict names ``"pos.*"``/``"layer_pos.*"``) or
  tests a scheme by its name (``position == "learned"``) or by ``hasattr``: callers use the
  model's methods (``position_parameters``, ``position_table``, ``with_positions``,
  ``extend_positions``), the name it gives its table in a state dict
  (``Transformer.POSITION_TABLE_KEY``) and the schemes' flags (``has_table``, ``rotates_qk``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import posemb
from posemb.positional import TABLE_SCHEMES

SRC = Path(posemb.__file__).resolve().parent
# docs/DESIGN.md, "Layers": from the ground up. "" is posemb/__init__.py (the package face).
LAYERS: list[set[str]] = [
    {"files", "positional", "configs"},  # import nothing of posemb
    {"data", "model", "report", "figures"},
    {"provenance"},
    {"", "runs"},  # the run folder (posemb.load reads it)
    {"interop"},  # Hugging Face folders, read and written
    {"train", "eval", "analysis"},
    {"experiments"},
    {"cli"},
    {"__main__"},  # python -m posemb
]
LAYER = {name: k for k, layer in enumerate(LAYERS) for name in layer}
# Upward imports, each inside a function (never at module level), with the reason:
CALL_TIME = {
    # Transformer.save_pretrained/from_pretrained give the model class the ecosystem's names;
    # the run-folder format they read and write is posemb.runs, a layer above the model
    "model/transformer.py": {"runs"},
    # posemb.load(run) reads a run folder; `import posemb` does not import posemb.runs
    "__init__.py": {"runs"},
}
# hasattr on something that is not a positional scheme: DDP's wrapper (no_sync)
HASATTR_ALLOWED = {"no_sync"}


def top_level(path: Path) -> str:
    """The top-level package or module of posemb that ``path`` belongs to ("" for
    posemb/__init__.py)."""
    parts = path.relative_to(SRC).parts
    return parts[0] if len(parts) > 1 else parts[0].removesuffix(".py").replace("__init__", "")


def posemb_imports(path: Path, module_level_only: bool = False, root: Path = SRC) -> set[str]:
    """The top-level posemb packages or modules ``path`` (a file under ``root``) imports
    (``model``, ``data``, ...)."""
    rel = path.relative_to(root).parts[:-1]  # the file's package inside posemb
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(rel[: len(rel) - (node.level - 1)])
            parts = base + (node.module.split(".") if node.module else [])
            if not parts:  # `from . import __version__`, `from .. import configs`
                parts = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("posemb."):
            parts = node.module.split(".")[1:]
        elif isinstance(node, ast.Import):
            parts = [a.name.split(".")[1] for a in node.names if a.name.startswith("posemb.")]
        else:
            continue
        if parts:
            found.add(parts[0])
    return {name for name in found if name in LAYER}


def test_every_package_has_a_layer():
    """A new package or module must be placed in LAYERS (and docs/DESIGN.md) to exist."""
    names = {top_level(p) for p in SRC.rglob("*.py")}
    assert names - set(LAYER) == set(), "not in LAYERS: place it in docs/DESIGN.md and here"
    assert set(LAYER) - names == set(), "LAYERS names a package that does not exist"


@pytest.mark.parametrize("name", sorted(LAYER, key=lambda n: (LAYER[n], n)))
def test_each_layer_imports_only_what_is_below_it(name):
    paths = [p for p in SRC.rglob("*.py") if top_level(p) == name]
    assert paths
    for path in paths:
        rel = str(path.relative_to(SRC))
        allowed = CALL_TIME.get(rel, set())
        wrong = {
            other
            for other in posemb_imports(path) - {name} - allowed
            if LAYER[other] >= LAYER[name]
        }
        assert not wrong, f"{rel} (layer {LAYER[name]}) imports {sorted(wrong)} (not below it)"


def test_call_time_imports_are_inside_functions():
    """The allowed upward edges are imports inside a function, never at module level."""
    for rel, packages in CALL_TIME.items():
        assert not posemb_imports(SRC / rel, module_level_only=True) & packages, rel


def test_the_layer_check_finds_what_it_looks_for(tmp_path):
    # the check above can fail: an eval module importing train (a peer) and cli (above it)
    (tmp_path / "eval").mkdir()
    bad = tmp_path / "eval" / "bad.py"
    bad.write_text("from ..train import train\nfrom posemb.cli import main\nfrom ..runs import x\n")
    found = posemb_imports(bad, root=tmp_path)
    assert found == {"train", "cli", "runs"}
    assert {other for other in found if LAYER[other] >= LAYER["eval"]} == {"train", "cli"}


def reaches_into_schemes(path: Path) -> list[str]:
    """Lines of ``path`` that reach into a model's schemes or test a scheme by name."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute) and node.attr in ("pos", "layer_pos"):
            found.append(f"{node.lineno}: .{node.attr}")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith(("pos.", "layer_pos."))
        ):
            found.append(f"{node.lineno}: {node.value!r}")
        elif isinstance(node, ast.Compare) and any(
            isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops
        ):
            names = [c.value for c in [node.left, *node.comparators] if isinstance(c, ast.Constant)]
            if any(name in posemb.SCHEMES for name in names):
                found.append(f"{node.lineno}: compares with a scheme name {names}")
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", None) == "hasattr"
            and not (
                len(node.args) == 2
                and isinstance(node.args[1], ast.Constant)
                and node.args[1].value in HASATTR_ALLOWED
            )
        ):
            found.append(f"{node.lineno}: hasattr")
    return found


def test_only_the_model_and_the_schemes_reach_into_schemes():
    outside = [
        p for p in SRC.rglob("*.py") if p.relative_to(SRC).parts[0] not in ("model", "positional")
    ]
    assert len(outside) > 40
    offenders = {
        str(p.relative_to(SRC)): lines for p in outside if (lines := reaches_into_schemes(p))
    }
    assert not offenders, offenders


def test_the_check_finds_what_it_looks_for(tmp_path):
    # the check above can fail: each pattern it refuses, written once
    bad = tmp_path / "bad.py"
    bad.write_text(
        "model.pos.weight\nmodel.layer_pos[0]\nsd['pos.weight']\n"
        "cfg.position != 'learned'\nhasattr(scheme, 'extend')\nhasattr(net, 'no_sync')\n"
    )
    found = sorted(int(line.split(":")[0]) for line in reaches_into_schemes(bad))
    assert found == [1, 2, 3, 4, 5]  # line 6: DDP's no_sync is not a scheme


@pytest.mark.parametrize("scheme", TABLE_SCHEMES)
def test_the_table_key_names_the_models_table(scheme):
    """Key maps (GPT-2's wpe) and analyze name the table by the model's own constant."""
    from posemb import ModelConfig, Transformer

    model = Transformer(ModelConfig.preset("micro", position=scheme))
    state = model.state_dict()
    assert state[Transformer.POSITION_TABLE_KEY].data_ptr() == model.position_table().data_ptr()
