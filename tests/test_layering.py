"""The dependency direction of SPEC §2, and the model's positional surface.

- ``positional/`` imports nothing of posemb outside itself; ``model/`` and ``data/`` import
  only ``positional/`` (besides themselves).
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
# posemb/files.py (atomic writes, JSON, safetensors) imports nothing of posemb: every layer
# but positional/ may use it
BOTTOM = {"files"}
# Transformer.save_pretrained/from_pretrained give the model class the ecosystem's names; the
# run-folder format they read and write lives with the trainer, imported when they are called
CALL_TIME = {"model/transformer.py": {"train"}}
# hasattr on something that is not a positional scheme: DDP's wrapper (no_sync)
HASATTR_ALLOWED = {"no_sync"}


def modules(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (SRC / folder).rglob("*.py"))


def posemb_imports(path: Path) -> set[str]:
    """The top-level posemb packages ``path`` imports (``model``, ``data``, ...)."""
    rel = path.relative_to(SRC).parts[:-1]  # the file's package inside posemb
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(rel[: len(rel) - (node.level - 1)])
            parts = base + (node.module.split(".") if node.module else [])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("posemb."):
            parts = node.module.split(".")[1:]
        elif isinstance(node, ast.Import):
            parts = [a.name.split(".")[1] for a in node.names if a.name.startswith("posemb.")]
        else:
            continue
        if parts:
            found.add(parts[0])
    return found


@pytest.mark.parametrize(
    "folder, allowed",
    [("positional", set()), ("model", {"positional", *BOTTOM}), ("data", {"positional", *BOTTOM})],
)
def test_lower_layers_import_only_what_is_below_them(folder, allowed):
    for path in modules(folder):
        rel = str(path.relative_to(SRC))
        outside = posemb_imports(path) - allowed - {folder} - CALL_TIME.get(rel, set())
        assert not outside, f"{rel} imports {sorted(outside)}"


def test_the_bottom_modules_import_nothing_of_posemb():
    for name in BOTTOM:
        assert not posemb_imports(SRC / f"{name}.py"), f"{name}.py imports posemb modules"


def test_call_time_imports_are_inside_functions():
    """The allowed upward edges are imports inside a function, never at module level."""
    for rel, packages in CALL_TIME.items():
        tree = ast.parse((SRC / rel).read_text(encoding="utf-8"))
        top = {n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))}
        for node in top:
            module = getattr(node, "module", None) or ""
            assert not any(module.lstrip(".").startswith(p) for p in packages), (rel, module)


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
