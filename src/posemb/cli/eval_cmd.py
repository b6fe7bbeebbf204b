"""Evaluate a run, or a local Hugging Face model folder, at several lengths (past the
training length too).

The text is drawn once, seeded (--seed), from across the whole validation split: spans of
the longest length, each cut into windows of every length, and the same target tokens
scored at every length, so the losses are a paired comparison. Every loss comes with its
standard error over spans (--tokens or --max-windows sets how many).

Without --extend/--overflow a length past a learned table exits 2 with the library's
message. --mode sliding scores every token once with up to the table's size of context
(--stride S tokens between windows). Writes results.json, results.csv, per_position.csv,
loss_vs_length.png, per_position.png, report.md and report.html in --out, a new or empty
folder (never a run's own), built aside and published whole at the end: a failure leaves
nothing, and --force replaces an existing one once the new results are complete. An
encoder run (model.causal=false) is refused: next-token losses say nothing about it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import UsageError, existing_run, length_list, positive_int, seed_int

HELP = "loss per evaluation length, with extension methods, overflow policies or a sliding window"
EXAMPLE = "posemb eval runs/a --lengths 128,256,512,1024 --extend interpolate --out runs/a/eval"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..eval.text import DEFAULT_SEED, DEFAULT_TOKENS
    from ..positional.extend import EXTEND_METHODS

    p.add_argument(
        "run_dir",
        type=existing_run,
        metavar="RUN|HF_DIR",
        help="a posemb run, or a local Hugging Face model folder (scored in its own tokens, "
        "by its own objective: docs/HF.md)",
    )
    p.add_argument(
        "--lengths", type=length_list, required=True, help="comma-separated, e.g. 128,256,512"
    )
    p.add_argument(
        "--extend",
        choices=EXTEND_METHODS,
        metavar="METHOD",
        help=f"one of: {', '.join(EXTEND_METHODS)}",
    )
    p.add_argument(
        "--overflow",
        choices=("clamp", "wrap"),
        help="positions past the table read its last row (clamp) or position mod its size (wrap)",
    )
    p.add_argument(
        "--mode",
        choices=("nonoverlap", "sliding"),
        default="nonoverlap",
        help="nonoverlap: windows of each length; sliding: every token scored once, with up "
        "to the table's size of context",
    )
    p.add_argument("--stride", type=positive_int, help="sliding mode: tokens between window starts")
    p.add_argument(
        "--data", metavar="SRC", help="evaluation text (default: the run's validation split)"
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--tokens",
        type=positive_int,
        metavar="N",
        help=f"scored tokens per length (default {DEFAULT_TOKENS:,}); sets the number of spans",
    )
    size.add_argument(
        "--max-windows",
        type=positive_int,
        metavar="N",
        help="spans (sequences of the longest length) to score instead; shorter lengths "
        "score the same tokens in more, shorter windows",
    )
    p.add_argument(
        "--seed",
        type=seed_int,
        default=DEFAULT_SEED,
        help=f"seed of the spans drawn from the split (default {DEFAULT_SEED})",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="the folder to write the results to (new or empty; written whole at the end)",
    )
    p.add_argument("--force", action="store_true", help="replace --out if it exists")


def run(args: argparse.Namespace) -> int:
    from ..eval.request import check_eval_options
    from ..files import output_dir
    from ..runs import refuse_model_folder

    rules = dict(extend=args.extend, overflow=args.overflow, mode=args.mode, stride=args.stride)
    check_eval_options(**rules, out=args.out)
    out = Path(args.out)
    refuse_model_folder(out, "--out")
    # the results are built in a hidden folder beside --out and published whole at the end
    with output_dir(out, force=args.force, src=args.run_dir, what="--out", under_src=True) as tmp:
        records, reading, page = _score(args, rules, tmp)
    metric = "accuracy" if any("accuracy" in r for r in records) else "loss"
    for r in records:
        value = r.get(metric)
        se = r.get(f"{metric}_se")
        shown = (
            f"{value:.4f} ± {se:.4f}"
            if value is not None and se is not None
            else f"{value:.4f}"
            if value is not None
            else f"n/a ({r.get('error', '')[:80]})"
        )
        print(f"L={r['eval_len']:>6}  {metric}={shown}  tokens={r['tokens']}")
    print(" ".join(reading))
    print(f"wrote {out / 'results.json'}, {out / page.name}")
    return 0


def _score(args: argparse.Namespace, rules: dict, out) -> tuple[list[dict], list[str], Path]:
    """Load, check, score and write the results into ``out`` (the hidden folder)."""
    from ..eval.reading import describe
    from ..eval.request import check_eval_model, untrained_note
    from ..eval.runner import load_eval_text, write_results
    from ..eval.tables import write_eval_report
    from ..eval.text import drawn_tokens
    from ..runs import RUN_SETTINGS_FILE, folder_kind, load_run, read_config, read_lineage, run_file
    from .common import device

    mask_id, args.scheme = None, None
    if folder_kind(args.run_dir) == "hf":  # a Hugging Face model folder: its own code
        from ..interop.hf_model import open_for_scoring

        model, tokenizer, cfg, mask_id = open_for_scoring(args.run_dir, args.data)
        model, args.scheme = model.to(device()), model.folder.model_type
    else:
        cfg = read_config(args.run_dir)
        if not cfg.model.causal:
            raise UsageError(
                f"{str(args.run_dir)!r} is a bidirectional encoder (model.causal=false): eval "
                "scores a causal LM's next tokens (or a Hugging Face encoder's masked tokens), "
                "which this run was not trained to predict; probe its use of order with "
                "posemb probe-order"
            )
        model, tokenizer = load_run(args.run_dir, device())
    check_eval_model(model, args.lengths, **rules)
    # what the run trained is known of posemb's runs; a sliding window reads the positions of
    # its window (the whole table), untrained ones too when the table is longer than training
    known = args.scheme is None or run_file(args.run_dir, RUN_SETTINGS_FILE).is_file()
    limit = getattr(model, "position_limit", None)
    read = args.lengths
    if args.mode == "sliding" and limit is not None:
        read = [min(L, limit) for L in args.lengths]
    note = untrained_note(cfg, read_lineage(args.run_dir), read, args.run_dir)
    warning = note if known else None
    if warning:
        print(f"posemb: warning: {warning}", file=sys.stderr, flush=True)
    # the text (and its length check) before any model work or output
    text = load_eval_text(
        cfg,
        tokenizer,
        args.data,
        args.lengths,
        n_spans=args.max_windows,
        n_tokens=drawn_tokens(args.tokens, mask_id is not None),
        seed=args.seed,
    )
    if mask_id is not None:  # an encoder: the same seeded offsets masked at every length
        text = text.with_mask(mask_id)
    print(f"scoring {text.summary()}", flush=True)
    records = _evaluate(args, model, cfg, tokenizer, text)
    failed = [r for r in records if r.get("loss") is None]
    if len(failed) == len(records):  # nothing measured: bad input, not success (no output)
        raise UsageError(f"no length could be evaluated: {failed[0].get('error', 'unknown error')}")
    if warning:  # kept with the numbers, not only printed
        for r in records:
            r["warning"] = warning
    _stride_note(args, records)
    write_results(out, records)
    reading = describe(records)
    title = f"posemb eval: {args.run_dir}"
    about = _describe_model(args, cfg) + (f" Warning: {warning}." if warning else "")
    _, page = write_eval_report(out, records, title, about, reading)
    return records, reading, page


def _stride_note(args: argparse.Namespace, records: list[dict]) -> None:
    """Say so when ``--stride`` changed nothing: one window covered every length."""
    sliding = [r for r in records if r.get("mode") == "sliding"]
    if args.stride and sliding and all(r.get("stride") is None for r in sliding):
        print(
            f"posemb: note: --stride {args.stride} has no effect here: the sliding window "
            "(the table, as long as each length asked for) covers every length in one pass",
            file=sys.stderr,
            flush=True,
        )


def _evaluate(args: argparse.Namespace, model, cfg, tokenizer, text) -> list[dict]:
    """Every length, with one progress bar (tokens through the model, overall ETA)."""
    from ..eval.progress import Progress
    from ..eval.runner import eval_cost, evaluate_run, model_provenance, record_provenance

    prov = record_provenance(text.provenance(), model_provenance(args.run_dir, model, cfg))
    total = eval_cost(model.position_limit, text, args.lengths, args.mode, args.stride)
    with Progress(total, "eval") as bar:
        return evaluate_run(
            model,
            cfg,
            text,
            args.lengths,
            method=args.extend,
            overflow=args.overflow,
            mode=args.mode,
            stride=args.stride,
            byte_level=tokenizer.kind == "byte",
            provenance=prov,
            progress=bar,
            scheme=args.scheme,
        )


def _describe_model(args: argparse.Namespace, cfg) -> str:
    """The report's line about the model scored."""
    if args.scheme is not None:  # a Hugging Face folder
        objective = "causal LM" if cfg.model.causal else "masked LM, scored on masked tokens"
        return (
            f"Hugging Face {args.scheme} ({objective}); its table serves "
            f"{cfg.model.max_positions} positions."
        )
    return (
        f"Scheme {cfg.model.position}, trained at {cfg.train.seq_len} tokens "
        f"(positions: {cfg.train.positions}); table size {cfg.model.max_positions}."
    )
