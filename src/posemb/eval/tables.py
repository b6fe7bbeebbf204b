"""The tables and the report of an eval or a sweep: ``mean ± standard error`` by length,
the paired change from the shortest length, the plots, and the provenance of the numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..report import Report
from .plots import plot_loss_vs_length, plot_per_position
from .reading import pm, scale_sentence, unit

KEYS = ("scheme", "recipe", "method", "mode")
# how a table shows the key values: what a learner reads, explained in KEY_NOTE
SHOWN = {("method", "none"): "–", ("mode", "nonoverlap"): "windows"}
KEY_NOTE = (
    "method: how the learned table was extended past its rows ('–': not extended). mode: "
    "'windows' cuts the text into windows of the evaluation length, each token scored once "
    "with the tokens before it in its window; 'sliding' slides a window of the training length "
    "along the text, so every token sees up to that many tokens before it and the table is "
    "never read past its end."
)


def _configs(records: list[dict]) -> dict[tuple, dict[int, dict]]:
    keyed: dict[tuple, dict[int, dict]] = {}
    for r in records:
        keyed.setdefault(tuple(r[k] for k in KEYS), {})[r["eval_len"]] = r
    return keyed


def _key_columns(keys: list[tuple]) -> list[int]:
    """The key columns whose value changes between rows (the scheme's always shown)."""
    return [i for i in range(len(KEYS)) if i == 0 or len({k[i] for k in keys}) > 1]


def _key_cells(key: tuple, columns: list[int]) -> list[object]:
    return [SHOWN.get((KEYS[i], key[i]), key[i]) for i in columns]


def results_table(records: list[dict]) -> tuple[list[str], list[list[object]]]:
    """Rows: the configurations (scheme, then recipe, method and mode where they differ
    between rows); columns: each length, ``mean ± standard error``."""
    lengths = sorted({r["eval_len"] for r in records})
    metric = "accuracy" if any("accuracy" in r for r in records) else "loss"
    keyed = _configs(records)
    columns = _key_columns(list(keyed))
    header = [*(KEYS[i] for i in columns), *[f"{metric} @{L}" for L in lengths]]
    rows = []
    for key, by_len in keyed.items():
        cells: list[object] = []
        for L in lengths:
            r = by_len.get(L)
            if r is None:
                cells.append(None)
            elif r.get("loss") is None:
                cells.append("n/a")
            else:
                cells.append(pm(r[metric], r.get(f"{metric}_se")))
        rows.append([*_key_cells(key, columns), *cells])
    return header, rows


def change_table(records: list[dict]) -> tuple[str, list[str], list[list[object]]] | None:
    """Paired change of each configuration from its shortest length, or None."""
    keyed = _configs([r for r in records if r.get("change_from")])
    if not keyed:
        return None
    first = min(r["change_from"]["eval_len"] for by in keyed.values() for r in by.values())
    lengths = sorted({L for by in keyed.values() for L in by})
    columns = _key_columns(list(_configs(records)))
    header = [*(KEYS[i] for i in columns), *[f"@{L}" for L in lengths]]
    rows = []
    for key, by_len in keyed.items():
        cells: list[object] = []
        for L in lengths:
            c = by_len[L]["change_from"] if L in by_len else None
            text = None if c is None else pm(c["diff"], c["diff_se"], sign=True)
            cells.append(text if c is None or not c["tie"] else f"{text} (tie)")
        rows.append([*_key_cells(key, columns), *cells])
    caption = (
        f"Change from {first} tokens ({unit(records)}, paired over the same targets; "
        "'tie': within 2 standard errors of no change)"
    )
    return caption, header, rows


def key_note(records: list[dict]) -> str:
    """What the method and mode columns mean, when a table shows them."""
    shown = [KEYS[i] for i in _key_columns(list(_configs(records)))]
    return KEY_NOTE if "method" in shown or "mode" in shown else ""


def eval_report(
    out_dir: Path, records: list[dict], title: str, intro: str, reading: list[str]
) -> Report:
    """The report of an eval or a sweep: tables, plots (drawn into ``out_dir``), provenance."""
    report = Report(title, intro, reading)
    header, rows = results_table(records)
    task = "loss @" not in header[-1]
    report.table(
        "Exact match by evaluation length (mean ± standard error over examples)"
        if task
        else f"Mean loss ({unit(records)}) by evaluation length, ± standard error over spans",
        header,
        rows,
    )
    scale = "" if task else scale_sentence(records)  # a loss's scale: text, not exact match
    explained = " ".join(x for x in (key_note(records), scale) if x)
    if explained:
        report.text("", explained)
    change = change_table(records)
    if change:
        report.table(*change)
    report.image(
        "Loss against evaluation length (bars: ± 1 standard error)",
        plot_loss_vs_length(records, out_dir / "loss_vs_length.png"),
    )
    if any(r.get("per_position") for r in records):
        report.image(
            "Loss at each position (longest length per curve; band: ± 1 standard error)",
            plot_per_position(records, out_dir / "per_position.png"),
        )
    errors = sorted({r["error"] for r in records if r.get("error")})
    report.notes += [f"not evaluated: {e}" for e in errors]
    add_provenance(report, records)
    return report


def write_eval_report(
    out_dir: Path, records: list[dict], title: str, intro: str, reading: list[str]
) -> tuple[Path, Path]:
    return eval_report(out_dir, records, title, intro, reading).write(out_dir)


def _unique(items: list[Any]) -> list[Any]:
    seen, out = set(), []
    for item in items:
        key = json.dumps(item, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def scored_text_sentence(data: dict[str, Any]) -> str:
    """What was scored, in one paragraph (from a record's ``provenance["data"]``)."""
    if "task" in data:
        return (
            f"Scored: the synthetic task {data['task']!r}, {data['examples']} examples per length "
            f"drawn with seed {data['seed']}; standard errors are over examples."
        )
    return (
        f"Scored text: the {data.get('split')} split of {data.get('source')!r} "
        f"({data.get('split_tokens', 0):,} {data.get('tokenizer')} tokens): {data.get('spans')} "
        f"spans of {data.get('span_len')} tokens drawn with seed {data.get('seed')} from across "
        f"the whole split; the same {data.get('targets_per_span')} targets of each span are scored "
        f"at every length and by every method ({data.get('scored_tokens', 0):,} tokens per "
        "length), so any two results are a paired comparison. Standard errors are over spans. "
        f"Fingerprint of the scored tokens: {data.get('fingerprint')}."
    )


def add_provenance(report: Report, records: list[dict]) -> None:
    """Versions, command, the scored text, its files and the models behind ``records``."""
    provs = [r.get("provenance") or {} for r in records]
    keys = ("posemb", "torch", "numpy", "python", "command")
    paragraphs = [
        f"posemb {e.get('posemb')}, torch {e.get('torch')}, numpy {e.get('numpy')}, Python "
        f"{e.get('python')}. Command: {e.get('command')}"
        for e in _unique([{k: p.get(k) for k in keys} for p in provs if p])
    ]
    datas = _unique([p["data"] for p in provs if p.get("data")])
    paragraphs += [scored_text_sentence(d) for d in datas]
    if not paragraphs:
        return
    report.text("Provenance", "\n\n".join(paragraphs))
    for d in datas:
        if d.get("files"):
            report.text(
                (
                    "The file the scored spans come from"
                    if len(d["files"]) == 1
                    else f"The {len(d['files'])} files the scored spans come from"
                ),
                ", ".join(d["files"]),
                folded=True,
            )
    runs: dict[str, list[object]] = {}
    for r, p in zip(records, provs):
        m = p.get("model")
        if m and m.get("run") not in runs:
            runs[m["run"]] = [
                r["scheme"],
                r["recipe"],
                m.get("run"),
                m.get("parameters"),
                m.get("steps"),
                m.get("tokens_seen"),
            ]
    if runs:
        report.table(
            "Models",
            ["scheme", "positions", "run", "parameters", "training steps", "tokens seen"],
            list(runs.values()),
        )
