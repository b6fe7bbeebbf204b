"""examples/tour.ipynb runs top to bottom, and its key cells compute what its text says; the
committed notebook carries no outputs.

The notebook runs in a kernel of this interpreter (a kernel spec written for the test, so a
``python3`` kernel installed elsewhere on the machine is never picked up), in a folder of the
test's own. A cell appended for the test reads the notebook's variables; nothing asserted
here is a figure measured once: only what must hold in every run.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "tour.ipynb"
KEY = "KEY-VALUES "
READ_BACK = f"""
print({KEY!r} + json.dumps({{
    "x_shape": list(x.shape),
    "table_shape": list(table.shape),
    "by_distance": [float(v) for v in by_distance],
    "probe_learned": min(probe.with_positions.token_diff),
    "probe_nope": probe.without_positions.max_diff,
    "scores": {{k: [s.accuracy, s.same_answer, s.pairs] for k, s in scores.items()}},
    "causal_without": causal.without_positions.max_diff,
    "causal_reading": causal.reading(),
    "message": message,
    "model_message": model_message,
    "extended_rows": longer.position_table().shape[0],
    "records": [[label(r), r["eval_len"], r["loss"]] for r in records],
}}))
"""


def test_the_committed_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert len(code) >= 10
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


def kernel_spec(root: Path) -> str:
    """A kernel spec running this interpreter, under ``root`` (put on JUPYTER_PATH)."""
    spec = root / "kernels" / "posemb-tour"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "posemb tour", "language": "python"})
    )
    return spec.name


@pytest.mark.slow
def test_the_tour_runs_top_to_bottom(tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("POSEMB_CACHE", str(tmp_path / "cache"))
    name = kernel_spec(tmp_path / "jupyter")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(READ_BACK))
    work = tmp_path / "work"
    work.mkdir()
    NotebookClient(
        nb, kernel_name=name, timeout=3600, resources={"metadata": {"path": str(work)}}
    ).execute()

    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    v = json.loads(printed.split(KEY, 1)[1])
    assert (work / "runs" / "tour" / "learned" / "model.safetensors").exists()
    # 1-3: the table, added to the token embeddings, trained, looked at
    assert v["x_shape"] == [1, 22, 64] and v["table_shape"] == [64, 128]
    assert v["by_distance"][0] == pytest.approx(1.0) and all(map(math.isfinite, v["by_distance"]))
    # 4: who chased whom
    assert v["probe_nope"] < 1e-6 and v["probe_learned"] > 0.01
    (learned, _, _), (nope, nope_same, pairs) = v["scores"]["learned"], v["scores"]["nope"]
    assert nope_same == pairs and nope <= 0.5, "both orders of every question answered alike"
    assert learned >= 0.9
    assert v["causal_without"] > 1e-3 and "causal mask implies order" in v["causal_reading"]
    # 5: past the end
    assert (
        "position 600 is past the end of the learned table (512 positions: 0–511)" in (v["message"])
    )
    assert (
        "position 64 is past the end of the learned table (64 positions: 0–63)"
        in (v["model_message"])
    )
    # 6-7: every extension method, the sliding window and the relatives, at 1x-8x L
    assert v["extended_rows"] == 512
    labels = {r[0] for r in v["records"]}
    methods = ["random", "tile", "repeat-last", "interpolate", "cubic", "extrapolate"]
    assert labels == {f"learned + {m}" for m in methods} | {
        "learned, sliding window",
        "sinusoidal",
        "rope",
        "alibi",
        "t5",
        "nope",
    }
    assert sorted({r[1] for r in v["records"]}) == [64, 128, 256, 512]
    assert len(v["records"]) == 4 * len(labels)
    assert all(math.isfinite(r[2]) for r in v["records"]), "a loss past L for every one"
