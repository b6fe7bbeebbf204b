"""What analyze says is striking in a table: a jump in the row norms and outlier rows (named
with their positions), the model's name as the title, and no share rounded to "(0%)"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from posemb.analysis.summary import analyze_table, plain_reading
from posemb.analysis.table import format_percent, format_share, norm_features, row_norms
from posemb.cli.main import main
from posemb.positional.sinusoidal import sinusoidal_table

BERT_KEY = "embeddings.position_embeddings.weight"


def smooth_table(n: int = 512, d: int = 64, seed: int = 0) -> torch.Tensor:
    """A smooth table (sinusoidal rows) whose row norms wobble by about 1%: ``[n, d]``."""
    g = torch.Generator().manual_seed(seed)
    return sinusoidal_table(n, d) * (1 + 0.01 * torch.randn(n, 1, generator=g))


def minilm_like(n: int = 512, jump: int = 128) -> torch.Tensor:
    """Rows from ``jump`` on at 80% of the norm (trained for fewer steps), row 0 five times
    the norm of the rest (a special first position)."""
    w = smooth_table(n)
    w[jump:] *= 0.8
    w[0] *= 5.0
    return w


@pytest.mark.parametrize("jump", [40, 128, 400])
def test_jump_and_outlier_row_0_are_named_with_their_positions(jump):
    a = analyze_table(minilm_like(jump=jump))
    s = a.to_json()["norms"]
    assert s["jump"]["position"] == jump and s["jump"]["previous"] == jump - 1
    assert s["jump"]["mean_after"] < s["jump"]["mean_before"]
    assert [o["position"] for o in s["outliers"]] == [0]
    reading = plain_reading(a)
    assert len(reading) == 4
    outlier, step = reading[2], reading[3]
    assert outlier.startswith("The row norm of position 0 is an outlier")
    assert "special first position" in outlier and "attention sink" in outlier
    assert step.startswith(f"Row norms jump between positions {jump - 1} and {jump}:")
    assert "change of training length" in step and f"from {jump} on trained for fewer" in step


def test_an_outlier_elsewhere_is_named_without_the_first_position_story():
    w = smooth_table()
    w[200] *= 3.0
    w[201] *= 0.5
    reading = plain_reading(analyze_table(w))
    assert len(reading) == 3
    assert reading[2].startswith("The row norms of positions 200–201 are outliers")
    assert "first position" not in reading[2]


@pytest.mark.parametrize(
    "table",
    [
        smooth_table(),
        torch.randn(512, 64, generator=torch.Generator().manual_seed(1)),  # a random init
        # norms growing smoothly from 1 to 1.5: two levels, but no step between neighbours
        smooth_table() * torch.linspace(1.0, 1.5, 512)[:, None],
        smooth_table(64),
        smooth_table(2048),
    ],
    ids=["smooth", "random", "ramp", "64 rows", "2048 rows"],
)
def test_a_table_without_such_features_gets_no_such_sentence(table):
    a = analyze_table(table)
    s = a.to_json()["norms"]
    assert s["jump"] is None and s["outliers"] == []
    reading = plain_reading(a)
    assert len(reading) == 2
    assert not any("outlier" in x or "jump" in x for x in reading)


def test_untrained_rows_are_left_to_their_own_sentence():
    """Rows at a random init past 400 have other norms; they are untrained rows (their own
    sentence), not a norm jump at 400."""
    w = smooth_table()
    w[400:] = torch.randn(112, 64, generator=torch.Generator().manual_seed(2)) * 0.5
    a = analyze_table(w)
    assert a.untrained == list(range(400, 512))
    assert norm_features(row_norms(w)).jump is not None  # what it would say, untrained included
    assert a.norm_features.jump is None and a.norm_features.outliers == []
    reading = plain_reading(a)
    assert len(reading) == 2 and "400–511" in reading[0]


def test_patch_tables_get_no_first_position_story():
    reading = plain_reading(analyze_table(minilm_like()), patches=True)
    assert "outlier" in reading[2] and "first position" not in reading[2]


def test_percentages_never_round_a_part_to_0_or_100():
    assert (format_share(3, 512), format_share(0, 512)) == ("3 of 512 (0.6%)", "0 of 512")
    assert [format_percent(x) for x in (0.0, 0.0004, 0.42, 0.995, 0.9996, 1.0)] == [
        "0%",
        "<0.1%",
        "42%",
        "99.5%",
        ">99.9%",
        "100%",
    ]


def hf_folder(folder: Path, table: torch.Tensor, name_or_path: str) -> Path:
    """A Hugging Face BERT folder holding only its position table and config."""
    folder.mkdir(parents=True)
    config = {
        "model_type": "bert",
        "_name_or_path": name_or_path,
        "max_position_embeddings": table.shape[0],
        "hidden_size": table.shape[1],
    }
    (folder / "config.json").write_text(json.dumps(config))
    save_file({BERT_KEY: table.float().contiguous()}, str(folder / "model.safetensors"))
    return folder


def analyze_cli(source: Path, out: Path, capsys) -> str:
    code = main(["analyze", str(source), "--out", str(out)])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    return stdout


def test_title_of_a_folder_saved_from_a_local_path_is_its_name(tmp_path, capsys):
    """A config whose ``_name_or_path`` is a local path: the folder's name, no path."""
    folder = hf_folder(tmp_path / "minilm", minilm_like(), "/home/x/models/minilm")
    out = tmp_path / "out"
    stdout = analyze_cli(folder, out, capsys)
    md, page = (out / "report.md").read_text(), (out / "report.html").read_text()
    title = md.splitlines()[0]
    assert title == "# Position table analysis: minilm"
    assert "<h1>Position table analysis: minilm</h1>" in page
    assert "/home" not in md and "/home" not in page and str(tmp_path) not in title
    # the striking things, named in the terminal and the reports
    assert "position 0 is an outlier" in stdout and "between positions 127 and 128" in stdout
    assert "jump at position 128" in stdout and "outlier rows: position 0" in stdout
    assert "between positions 127 and 128" in md


def test_title_of_a_hub_folder_is_its_hub_name(tmp_path, capsys):
    name = "sentence-transformers/all-MiniLM-L6-v2"
    folder = hf_folder(tmp_path / "snapshots" / "3f1a2b", smooth_table(64), name)
    out = tmp_path / "out"
    analyze_cli(folder, out, capsys)
    assert (out / "report.md").read_text().startswith(f"# Position table analysis: {name}\n")
    assert json.loads((out / "analysis.json").read_text())["name"] == name


def test_title_of_a_run_is_its_folder_and_scheme(causal_run, tmp_path, capsys):
    out = tmp_path / "out"
    analyze_cli(causal_run, out, capsys)
    title = (out / "report.md").read_text().splitlines()[0]
    assert title == f"# Position table analysis: {causal_run.name} (learned)"


def test_no_share_rounded_to_0_percent(tmp_path, capsys):
    """512 smooth rows with 3 left at a random init: the summary gives "3 of 512 (0.6%)";
    nearest-neighbour offsets held by one row of 512 are not "(0%)" either."""
    w = sinusoidal_table(512, 64)
    w[509:] = torch.randn(3, 64, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "weights.safetensors"
    save_file({"pos.weight": w.float()}, str(path))
    stdout = analyze_cli(path, tmp_path / "out", capsys)
    assert "3 of 512 (0.6%): positions 509–511" in stdout
    assert "0.2%" in stdout  # an offset held by 1 row of 512
    assert "(0%" not in stdout and " 0%" not in stdout


@pytest.fixture
def drawn(monkeypatch) -> list:
    """The figures the plots draw, in order (each still saved)."""
    from posemb.analysis import plots

    figures: list = []

    def keep(fig, path):
        figures.append(fig)
        return save_png(fig, path)

    save_png = plots.save_png
    monkeypatch.setattr(plots, "save_png", keep)
    return figures


@pytest.mark.parametrize("n", [64, 2048])
def test_the_pca_trajectory_is_a_line_coloured_by_position(n, drawn, tmp_path):
    from matplotlib.collections import LineCollection

    from posemb.analysis.plots import labelled_positions, plot_pca_trajectory
    from posemb.analysis.table import pca

    p = pca(smooth_table(n), 2)
    plot_pca_trajectory(p.projections, p.explained_variance_ratio, tmp_path / "p.png")
    ax, bar = drawn[0].axes
    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(lines) == 1 and len(lines[0].get_segments()) == n - 1
    assert bar.get_ylabel() == "position"
    labels = [t.get_text() for t in ax.texts]
    assert labels == [str(i) for i in labelled_positions(n)]
    assert labels[0] == "0" and labels[-1] == str(n - 1) and 3 <= len(labels) <= 6


def test_per_position_plots_name_their_axes_and_units(drawn, tmp_path):
    from posemb.analysis.plots import plot_analysis

    a = analyze_table(minilm_like())
    plot_analysis(a, tmp_path)
    cosine, *_, norms, nn = drawn
    ax, bar = cosine.axes
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("position j", "position i")
    assert bar.get_ylabel() == "cosine similarity"
    ax = norms.axes[0]
    assert ax.get_xlabel() == "position i" and "(table units)" in ax.get_ylabel()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["norm jump at position 128", "outlier rows"]
    assert "(positions)" in nn.axes[0].get_xlabel()
