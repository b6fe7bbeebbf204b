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
    "scratch_losses": [loss_with, loss_without],
    "scratch_diffs": [diff_without, diff_with],
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
    "tuned_rows": tuned.position_table().shape[0],
    "tuned": [[r["eval_len"], r["loss"], change(r, b)[0], change(r, b)[1]]
              for r, b in zip(tuned_records, before)],
    "total_s": total_s,
    "grown_grid": list(grown.weight.shape),
    "grid_axes": axes,
}}))
"""


def test_the_committed_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert len(code) >= 10
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


def test_the_tour_starts_in_plain_pytorch_and_ends_with_folded_answers():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    first_posemb = next(i for i, s in enumerate(code) if "import posemb" in s)
    assert any("nn.Parameter(torch.randn(n, d) * 0.02)" in s for s in code[:first_posemb])
    exercises = next(c for c in nb.cells if c.source.lstrip().startswith("## Summary"))
    assert "## Exercises" in exercises.source and "Answers below, folded" in exercises.source
    answers = nb.cells[nb.cells.index(exercises) + 1]
    assert answers.source.startswith("### Answers")
    assert answers.metadata["jupyter"]["source_hidden"] is True


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
    # the kernel's torch on one thread, as the suite's subprocesses (tests/kit.py): threads
    # spinning against other processes make a busy 2-core machine many times slower
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
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
    # 1: plain PyTorch: without P the outputs for the two orders are one set, reordered
    without, with_p = v["scratch_diffs"]
    assert without < 1e-4 and with_p > 1e-3
    assert v["scratch_losses"][0] < v["scratch_losses"][1], "P lets the model reverse a text"
    # 2-4: the table, added to the token embeddings, trained, looked at
    assert v["x_shape"] == [1, 22, 64] and v["table_shape"] == [64, 128]
    assert v["by_distance"][0] == pytest.approx(1.0) and all(map(math.isfinite, v["by_distance"]))
    # 5: who chased whom
    assert v["probe_nope"] < 1e-6 and v["probe_learned"] > 0.01
    (learned, _, _), (nope, nope_same, pairs) = v["scores"]["learned"], v["scores"]["nope"]
    assert nope_same == pairs and nope <= 0.5, "both orders of every question answered alike"
    assert learned >= 0.9
    assert v["causal_without"] > 1e-3 and "causal mask implies order" in v["causal_reading"]
    # 6: past the end
    assert (
        "position 600 is past the end of the learned table (512 positions: 0–511)" in (v["message"])
    )
    assert (
        "position 64 is past the end of the learned table (64 positions: 0–63)"
        in (v["model_message"])
    )
    # 7, 9: every extension method, the sliding window and the relatives, at 1x-8x L
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
    at_l = {r[2] for r in v["records"] if r[1] == 64 and r[0].startswith("learned")}
    assert len(at_l) == 1, "at L no row is added: every learned row is the trained model"
    # 8: fine-tuned at 4L from the interpolated table, its loss at 4L falls beyond noise
    assert v["tuned_rows"] == 256
    (length, _, diff, se) = v["tuned"][2]
    assert length == 256 and diff < -2 * se
    # 10: the table in two dimensions (a ViT's patches)
    assert v["grown_grid"] == [1 + 24 * 24, 64]
    assert v["grid_axes"]["by_row_offset"][1] > v["grid_axes"]["by_row_offset"][-1]
    # the tour prints how long it took (its time is not asserted: timing stays out of tests)
    timed = next(c for c in nb.cells if c.cell_type == "code" and "total_s =" in c.source)
    assert "the whole tour: " in "".join(o.get("text", "") for o in timed.outputs)
    assert v["total_s"] > 0
