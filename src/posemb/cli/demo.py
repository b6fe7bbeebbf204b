"""The main job, as a lesson: learnable absolute positions, told in order, measured in this run.

On built-in data (the Python standard library's own source), CPU-friendly. The terminal and
report.html tell the same story; each section is a sentence or two of plain language and
the numbers (or picture) measured in this run:

1. the table: one trainable row per position, added to the token embeddings;
2. trained with the model: three byte-level models at L = 64 tokens with the same data,
   budget and seed (a learned table of 64 rows, RoPE, ALiBi: a quick sweep subset), and a
   sample from the learned-table model, labelled for what it is;
3. what the table learned: the cosine similarity of its rows by distance, a heatmap, PCA;
4. who chased whom: "The cat chased the dog" / "The dog chased the cat" in a small
   bidirectional encoder (identical without positions, to float precision, at every layer
   and per token; different with its learned table), the causal model for contrast, and
   the encoder's accuracy on which of two capitals comes first, with a learned table and
   without positions (synthetic:order, each question asked in both orders);
5. past the end of the table: the error for position 64 + k;
6. every way past it: the loss at 1x/2x/4x/8x the training length with every extension
   method and a sliding window, beside RoPE and ALiBi, on 65,536 held-out tokens drawn from
   across the validation split (the same tokens at every length), with standard errors;
7. the files and the time each part took.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

HELP = "the main job: train, generate, probe order, and go past the table (a few minutes on a CPU)"
EXAMPLE = "posemb demo --out runs/demo"
MARKER = "posemb-demo.txt"
TEXTS = ("The cat chased the dog", "The dog chased the cat")
PROMPT = "def "


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out", default="runs/demo", metavar="DIR", help="output directory (default runs/demo)"
    )
    p.add_argument(
        "--data", default="stdlib", metavar="SRC", help="training text (default: stdlib)"
    )


class Lesson:
    """The demo's sections: printed as they come, kept in the same order for the report."""

    def __init__(self) -> None:
        from ..report import Report

        self.report = Report("")

    def section(self, title: str, *paragraphs: str) -> None:
        print(f"\n== {title} ==", flush=True)
        print("\n\n".join(textwrap.fill(p, 96) for p in paragraphs), flush=True)
        self.report.text(title, "\n\n".join(paragraphs))

    def say(self, *paragraphs: str) -> None:
        """More plain text in the current section."""
        print("\n\n".join(textwrap.fill(p, 96) for p in paragraphs), flush=True)
        self.report.text("", "\n\n".join(paragraphs))

    def shown(self, body: str) -> None:
        """Measured output, shown as it is (terminal and report)."""
        print(body, flush=True)
        self.report.text("", body, pre=True)

    def figure(self, caption: str, path: Path) -> None:
        print(f"[{caption}: {path}]", flush=True)
        self.report.image(caption, path)


def run(args: argparse.Namespace) -> int:
    with _fresh_out(Path(args.out)) as out:
        return _lesson(args, out)


def _lesson(args: argparse.Namespace, out: Path) -> int:
    import sys

    from ..experiments.sweep import BUDGETS, SweepPlan
    from ..runs import load_run

    t0 = time.perf_counter()
    L = BUDGETS["quick"]["train_len"]
    progress = sys.stderr.isatty()
    lengths = [L, 2 * L, 4 * L, 8 * L]
    plan = SweepPlan(
        ["learned", "rope", "alibi"], L, lengths, "quick", args.data, progress=progress
    )
    lesson = Lesson()
    _the_table(lesson, plan)
    records, lm_s = _train_models(lesson, plan, out)
    model, tokenizer = load_run(out / "runs" / "learned")
    _sample(lesson, model, tokenizer, out / "runs" / "learned")
    plots = _look_at_the_table(lesson, model, out)
    order_s = _who_chased_whom(lesson, model, tokenizer, out, progress)
    _past_the_end(lesson, model)
    report = _every_way_past(lesson, plan, out, records)
    times = [
        ("language models: training and scoring", f"{lm_s:.0f} s"),
        ("order encoders: training, probe and questions", f"{order_s:.0f} s"),
        ("total", f"{time.perf_counter() - t0:.0f} s"),
    ]
    report.pairs("Time on this machine", times)
    md, page = report.write(out)
    _section("7. Files")
    print(
        f"runs (checkpoint, metrics.jsonl each): {out / 'runs'}\nplots: "
        f"{', '.join(str(p) for p in plots)}\nresults: {out / 'results.json'}, {out / 'results.md'}"
        f"\nreport (everything above, plots, provenance): {page}\n"
        + "\n".join(f"time, {k}: {v}" for k, v in times)
    )
    return 0


def _section(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


@contextlib.contextmanager
def _fresh_out(out: Path) -> Iterator[Path]:
    """``out``, this demo's alone (:func:`posemb.runs.claim.work_folder`: a second demo to it
    is refused while this one runs), emptied when an earlier demo wrote it and marked as the
    demo's. A demo that fails or is interrupted removes it whole; a killed one leaves it
    (marked), and the next demo replaces it."""
    from ..runs.claim import work_folder

    if out.exists() and not (out / MARKER).exists():
        raise FileExistsError(
            f"{str(out)!r} exists and is not a posemb demo output; choose another --out"
        )
    try:
        with work_folder(out) as folder:
            _clear(folder)  # an earlier demo's output
            (folder / MARKER).write_text("written by `posemb demo`; safe to delete\n")
            try:
                yield folder
            except BaseException:
                _clear(folder)
                raise
    except BaseException:
        with contextlib.suppress(OSError):
            out.rmdir()  # emptied above (another demo's folder is never empty)
        raise


def _clear(folder: Path) -> None:
    """Everything in a demo's folder but the writer's lock."""
    from ..runs.layout import LOCK_FILE

    for p in folder.iterdir():
        if p.name != LOCK_FILE:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


# -- 1, 2: the table, trained with the model ------------------------------------------------------
def _the_table(lesson: Lesson, plan) -> None:
    from ..experiments.sweep import variant_config
    from ..model import Transformer

    model = Transformer(variant_config(plan, "learned").model)
    rows, width = model.position_table().shape
    lesson.section(
        "1. A learned table of positions: x_i = E[token_i] + P[i]",
        "Self-attention on its own sees a sequence as a bag of tokens. A learned absolute "
        "positional embedding gives every position its own trainable vector: a table P with "
        "one row per position, added to each token's embedding before the first layer. The "
        f"demo's model has P of {rows} rows x {width} numbers ({rows * width:,} of its "
        f"{model.num_parameters():,} parameters), so it can read at most {rows} tokens at once.",
    )


def _train_models(lesson: Lesson, plan, out: Path) -> tuple[list[dict], float]:
    from ..eval.reading import scale_sentence
    from ..experiments.sweep import run_sweep, variant_config

    tc = variant_config(plan, "learned").train
    lesson.section(
        "2. Training the table with the model",
        "P starts as random numbers and is trained with every other weight, by the same "
        f"optimiser, to predict the next byte of {plan.data!r} text. Two models of the same "
        "size without a table train beside it, for later: RoPE (rotates queries and keys by "
        "position) and ALiBi (penalises attention by distance). Same data, seed and budget: "
        f"{tc.max_steps} steps of {tc.batch_size} x {tc.seq_len} bytes each.",
    )
    t = time.perf_counter()
    records = run_sweep(plan, out)
    seconds = time.perf_counter() - t
    lines = []
    for name in plan.variants:
        r = next(r for r in records if r["scheme"] == name and r["eval_len"] == plan.train_len)
        lines.append(
            f"{name:<8} {tc.max_steps} steps in {_train_seconds(out / 'runs' / name):4.0f} s   "
            f"held-out loss at {plan.train_len} tokens: {_pm(r)} nats per byte"
        )
    lesson.shown("\n".join(lines))
    at_L = [r for r in records if r["eval_len"] == plan.train_len]
    lesson.say(
        "The loss is the model's mean surprise at the true next byte: minus the log of the "
        "probability it gave that byte, in nats per byte (one token is one byte here), lower "
        f"is better, ± its standard error over spans of held-out text. {scale_sentence(at_L)}"
    )
    return records, seconds


def _train_seconds(run_dir: Path) -> float:
    """The training time a run recorded (its last metrics line)."""
    from ..runs import METRICS_FILE

    lines = (run_dir / METRICS_FILE).read_text().splitlines()
    return float(json.loads(lines[-1]).get("elapsed_s", float("nan")))


def _pm(r: dict) -> str:
    from ..eval.reading import pm

    return pm(r["loss"], r.get("loss_se"))


def _sample(lesson: Lesson, model, tokenizer, run_dir: Path) -> None:
    from ..model.generation import generate_text
    from ..runs import read_config

    cfg = read_config(run_dir)
    seconds = _train_seconds(run_dir)
    lesson.section(
        f"2b. What a {seconds:.0f}-second byte-level model writes",
        f"A sample from the learned-table model: {model.num_parameters() / 1e6:.2f} M "
        f"parameters, trained for {cfg.train.max_steps} steps ({seconds:.0f} s here) on "
        f"{cfg.data.source!r}, one byte at a time. Prompt {PROMPT!r}, temperature 0.8, top-k "
        "40. Expect text shaped like its training data, not sense.",
    )
    lesson.shown(generate_text(model, tokenizer, PROMPT, 120, temperature=0.8, top_k=40, seed=0))


# -- 3: what the table learned ------------------------------------------------------------------
def _look_at_the_table(lesson: Lesson, model, out: Path) -> list[Path]:
    from ..analysis.plots import plot_cosine_heatmap, plot_pca_trajectory
    from ..analysis.table import cosine_by_distance, pca

    table = model.position_table().detach()  # [rows, d]
    rows = table.shape[0]
    by_k = cosine_by_distance(table, rows // 2)  # [rows // 2 + 1]
    ks = sorted({k for k in (1, 4, 16, rows // 2) if 0 < k < len(by_k)})
    near, far = float(by_k[ks[0]]), float(by_k[ks[-1]])
    p = pca(table, k=2)
    top2 = float(p.explained_variance_ratio[:2].sum())
    alike = (
        f"rows of neighbouring positions point in more similar directions (cosine similarity "
        f"{near:.2f}) than rows {ks[-1]} apart ({far:.2f}): nobody told the model that "
        "position 5 is near position 6, it learned it from the text"
        if near > far + 0.1
        else f"rows of neighbouring positions are not much more alike (cosine similarity "
        f"{near:.2f}) than rows {ks[-1]} apart ({far:.2f}): this table has not yet learned "
        "which positions are near each other"
    )
    lesson.section(
        "3. What the table learned",
        f"Each row of P is {table.shape[1]} numbers, random at the start (any two random rows "
        f"have a cosine similarity near 0). After training, {alike}. The first two principal "
        f"components of the table hold {top2:.0%} of its variance; the second plot follows "
        "the positions along them.",
    )
    lesson.shown(
        "mean cosine similarity of rows i and i + k: "
        + "   ".join(f"k = {k}: {float(by_k[k]):.2f}" for k in ks)
        + f"\nvariance on the first two principal components: {top2:.1%}"
    )
    L = rows
    heatmap = plot_cosine_heatmap(
        table, out / "position_cosine.png", title=f"Learned table, trained at L={L}"
    )
    trajectory = plot_pca_trajectory(
        p.projections,
        p.explained_variance_ratio,
        out / "position_pca.png",
        title=f"Learned table, trained at L={L}: PCA",
    )
    lesson.figure("The learned table: cosine similarity between positions", heatmap)
    lesson.figure("The learned table on its first two principal components", trajectory)
    from ..analysis.explorer import add_explorer

    add_explorer(lesson.report, table, caption="3b. Point at the table", std=model.config.init_std)
    print("[3b. Point at the table: in report.html, an explorer of the table]", flush=True)
    return [heatmap, trajectory]


# -- 4: who chased whom -------------------------------------------------------------------------
def _who_chased_whom(lesson: Lesson, causal_model, tokenizer, out: Path, progress: bool) -> float:
    from ..experiments.order import ORDER_SETTINGS, train_order_models

    t = time.perf_counter()
    steps, rows = ORDER_SETTINGS["train.max_steps"], ORDER_SETTINGS["model.max_positions"]
    lesson.section(
        "4. Who chased whom",
        f'Without positions, "{TEXTS[0]}" and "{TEXTS[1]}" are the same bag of tokens. To '
        "see it, two small bidirectional encoders (every token attends to every other, as in "
        f"BERT) train for {steps} steps on a task that needs the order: which of two capital "
        "letters comes first ('kqXbfzYme?' -> X). One has a learned table of "
        f"{rows} rows, the other no positions at all. Same data, seed and budget.",
    )
    runs = train_order_models(out / "runs", ("learned", "nope"), {"train.progress": progress})
    lines, scores = _order_lines(runs, causal_model, tokenizer)
    lesson.shown("\n".join(lines))
    learned, nope = scores
    lesson.say(
        "Without positions the encoder sees the two texts as the same bag of tokens, so it "
        "gives both orders of a question the same answer and cannot pass 50%: it got "
        f"{nope.accuracy:.1%} of {nope.questions:,} questions right. With a learned table the "
        f"two texts differ, and the encoder got {learned.accuracy:.1%} right. A causal model is "
        "different: it tells the two texts apart even with its positions removed, because "
        "each token sees only the tokens before it, so the causal mask itself gives the "
        "order away.",
    )
    return time.perf_counter() - t


def _order_lines(runs: dict[str, Path], causal_model, tokenizer) -> tuple[list[str], list]:
    """The probe on both texts, then each encoder's score on the order questions."""
    from ..eval.order import score_order
    from ..eval.probe import probe_order
    from ..runs import load_run, read_config

    encoder, byte_tokenizer = load_run(runs["learned"])
    enc = probe_order(encoder, byte_tokenizer, *TEXTS)
    lm = probe_order(causal_model, tokenizer, *TEXTS)
    w, wo, lm_wo = enc.with_positions, enc.without_positions, lm.without_positions
    same = "identical" if wo.identical else "differ"
    lines = [
        f'"{TEXTS[0]}" vs "{TEXTS[1]}", compared at every layer (float64), as mean hidden '
        "states and token by token (each token against the same token in the other text):",
        f"  {'the encoder, its learned table:':<50}differ by up to {w.size()}",
        f"  {'the same encoder, positions removed:':<50}{same}, largest difference "
        f"{wo.max_diff:.1g}",
        f"  {'the causal model of section 2, positions removed:':<50}differ by up to "
        f"{lm_wo.size()}",
        "which capital comes first? questions drawn with a fixed seed, each asked in both orders:",
    ]
    scores = []
    for label, run_dir in zip(("encoder, learned table:", "encoder, no positions:"), runs.values()):
        model, _ = load_run(run_dir)
        scores.append(score_order(model, read_config(run_dir).train.seq_len))
        lines.append(f"  {label:<24}{scores[-1].line()}")
    return lines, scores


# -- 5, 6: past the end of the table --------------------------------------------------------------
def _past_the_end(lesson: Lesson, model) -> None:
    import torch

    from ..positional.learned import PositionOutOfRangeError

    L = model.position_limit
    lesson.section(
        f"5. Past the end of the table ({L} positions)",
        f"The table has {L} rows, for positions 0 to {L - 1}: there is no vector for position "
        f"{L} or beyond. An input of {L + 16} tokens asks for them, and the model refuses "
        "before any lookup, naming the remedies:",
    )
    try:
        model(torch.zeros(1, L + 16, dtype=torch.long))
        message = f"model(input of {L + 16} tokens) ran without an error"
    except PositionOutOfRangeError as e:
        message = f"model(input of {L + 16} tokens) raises PositionOutOfRangeError:\n  {e}"
    lesson.shown(message)


def _every_way_past(lesson: Lesson, plan, out: Path, records: list[dict]):
    """Section 6 (the results, printed), then the whole report (not yet written)."""
    from ..eval.reading import describe
    from ..eval.request import untrained_note
    from ..experiments.sweep import sweep_report
    from ..runs import read_config

    sweep = sweep_report(plan, out, records, title="")
    lens = ", ".join(map(str, plan.eval_lens))
    lesson.section(
        "6. Every way past the end, and the relatives",
        "Each way past the end of the table, scored on the same held-out text at "
        f"{lens} tokens ({records[0]['tokens']:,} scored tokens per length; mean loss in nats "
        "per byte, lower is better, ± standard error over spans). The table extended by each "
        "method: random new rows, tile (repeat the table), repeat-last (repeat its last row), "
        "interpolate and cubic (stretch the 64 rows over the new length), extrapolate (fit "
        "waves to the rows and continue them). Or no extension at all: a sliding window of "
        f"{plan.train_len} tokens moves along the text, so the table is never read past its "
        "end and every byte is predicted from up to 63 bytes before it (the 'sliding' row; "
        "the other rows cut the text into windows of the evaluation length). Beside them RoPE "
        "and ALiBi, which have no table: whether that carries them past 64 is for the numbers "
        "to say.",
    )
    note = untrained_note(read_config(out / "runs" / "learned"), None, plan.eval_lens, "learned")
    if note:
        lesson.shown(f"note: {note}")
    print((out / "results.md").read_text(), flush=True)
    reading = " ".join(describe(records))
    print(textwrap.fill(reading, 96), flush=True)
    relatives = _relatives(records, plan)
    print(textwrap.fill(relatives, 96), flush=True)
    report = lesson.report
    report.title = "posemb demo: a learned table of positions, from its first row to past its end"
    report.intro = (
        "Learnable absolute positional embeddings in seven steps. Every number on this page "
        "was measured in this run."
    )
    report.text("", f"{sweep.intro}\n\n{reading}\n\n{relatives}")
    report.blocks += sweep.blocks
    report.notes += sweep.notes
    return report


def _relatives(records: list[dict], plan) -> str:
    """What the numbers say of RoPE, ALiBi and the sliding window, against the interpolated
    table: each change from L to the longest length, in words that follow its sign."""
    from ..eval.reading import pm

    L, longest = plan.train_len, max(plan.eval_lens)

    def change(scheme: str, method: str = "none", mode: str = "nonoverlap") -> dict | None:
        for r in records:
            c = r.get("change_from")
            if (r["scheme"], r["method"], r["mode"], r["eval_len"]) == (
                scheme,
                method,
                mode,
                longest,
            ) and c:
                return c
        return None

    def moved(c: dict) -> str:
        if c["tie"]:
            return f"stays level ({pm(c['diff'], c['diff_se'], sign=True)}, a tie)"
        return ("rises" if c["diff"] > 0 else "falls") + f" by {pm(abs(c['diff']), c['diff_se'])}"

    rope, alibi = change("rope"), change("alibi")
    sliding, interp = change("learned", mode="sliding"), change("learned", "interpolate")
    out = []
    if rope and interp:
        than = "more than" if rope["diff"] > interp["diff"] else "less than"
        out.append(
            f"No table does not mean no limit: from {L} to {longest} tokens RoPE's loss "
            f"{moved(rope)}, {than} the interpolated table's "
            f"({pm(interp['diff'], interp['diff_se'], sign=True)}). "
            f"RoPE trained only on distances below {L}, and its rotations at longer distances "
            "are as new to it as new rows are to a table."
        )
    falls = [(n, c) for n, c in (("ALiBi's", alibi), ("the sliding window's", sliding)) if c]
    if falls:
        said = " and ".join(f"{n} loss {moved(c)}" for n, c in falls)
        out.append(
            said[0].upper()
            + said[1:]
            + f" from {L} to {longest} tokens. Where a loss falls, it is context: in windows of "
            f"{L} tokens a byte has {(L - 1) / 2:.1f} bytes before it on average, in longer "
            "windows (or a window sliding along the text) nearly every byte has the most its "
            "model can use. ALiBi penalises attention by distance, so far bytes cost it little "
            "and the extra near context helps."
        )
    return " ".join(out)
