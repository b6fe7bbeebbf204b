"""posemb beside nanoGPT on nanoGPT's own CPU recipe for shakespeare_char, both at once.

    python benchmarks/nanogpt_side_by_side.py --nanogpt ~/src/nanoGPT            # 2,000 iters
    python benchmarks/nanogpt_side_by_side.py --nanogpt ~/src/nanoGPT --iters 200  # a check
    python benchmarks/nanogpt_side_by_side.py --baseline-ref main                 # posemb vs posemb

nanoGPT (github.com/karpathy/nanoGPT, MIT) is not part of this repository: give the path of
a checkout. Its ``train.py`` runs with the README's CPU recipe (4 layers, 4 heads, 128 wide,
T=64, batch 12, dropout 0, lr 1e-3 -> 1e-4, beta2 0.99, eval every 250 iterations on 20
batches) and ``posemb train`` with the same settings, **at the same time, one thread each**,
on the same text (``--data``, default ``../shared/data/tinyshakespeare.txt``; first 90%
trains, last 10% validates; nanoGPT's own ``prepare.py`` writes its files, run in a scratch
folder so the checkout is left as it was). Each pair is run ``--repeats`` times, the start
order alternating.

Reported for each: tokens/s in the steady state (768 tokens over the median iteration time,
from nanoGPT's ``time ...ms`` lines and posemb's per-step ``elapsed_s``), wall time (process
start to exit: startup, compilation and evaluation included) and tokens/s over it, and the
final model's validation loss, scored afterwards by this script on the same held-out
characters for both: the validation text cut into windows of 64, targets 1-63 of each
window (109,746 characters), mean nats and its standard error over windows, and the paired
difference (posemb - peer) with its standard error.

Pair ``r`` trains both sides with seed ``1337 + r`` (nanoGPT's unmodified train.py with
``torch.manual_seed`` shifted, since it has no seed setting), so ``--repeats 3`` gives three
training seeds a side and the loss difference's standard error over seeds. Prefix the
command with ``ATEN_CPU_CAPABILITY=avx2`` to run both sides with AVX2 kernels (what a machine
without AVX-512 runs).

``--baseline-ref REF`` runs posemb at a git ref (a temporary worktree) as the peer instead:
before/after ratios measured in one run. Results go to ``benchmarks/results/NAME-TIME/``
(``results.json``, the logs) with a line to paste into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
BATCH, BLOCK = 12, 64  # the README's CPU recipe
# ../shared/data/tinyshakespeare.txt (nanoGPT's shakespeare_char text, 1,115,394 bytes) from
# the checkout or a folder above it
DEFAULT_DATA = next(
    (
        p / "shared" / "data" / "tinyshakespeare.txt"
        for p in REPO.parents
        if (p / "shared" / "data" / "tinyshakespeare.txt").is_file()
    ),
    REPO.parent / "shared" / "data" / "tinyshakespeare.txt",
)
NANOGPT_RECIPE = [  # README.md, "I only have a macbook": the CPU run of shakespeare_char
    "--device=cpu",
    "--compile=False",
    "--eval_iters=20",
    "--log_interval=1",
    f"--block_size={BLOCK}",
    f"--batch_size={BATCH}",
    "--n_layer=4",
    "--n_head=4",
    "--n_embd=128",
    "--dropout=0.0",
]
# posemb's settings for the same run: the shakespeare-char preset (lr 1e-3 -> 1e-4, warmup
# 100, beta2 0.99, weight decay 0.1, clip 1.0, no biases) at the recipe's size, with
# nanoGPT's exact GELU and weight decay on the position table (nanoGPT decays every matrix)
POSEMB_RECIPE = [
    "model.n_layer=4",
    "model.n_head=4",
    "model.d_model=128",
    f"model.max_positions={BLOCK}",
    "model.dropout=0.0",
    "model.activation=gelu",
    f"train.seq_len={BLOCK}",
    f"train.batch_size={BATCH}",
    "train.eval_batches=20",
    "train.decay_positions=true",
    "train.log_every=1",
    "train.progress=false",
]


@dataclass
class Run:
    """One training process of a pair and what it reported."""

    name: str
    cmd: list[str]
    cwd: Path
    env: dict[str, str]
    log: Path
    wall_s: float = math.nan
    step_s: list[float] = field(default_factory=list)  # per-iteration times, steady state
    returncode: int | None = None

    def summary(self, iters: int) -> dict:
        med = statistics.median(self.step_s) if self.step_s else math.nan
        return {
            "wall_s": round(self.wall_s, 2),
            "median_step_ms": round(med * 1e3, 3),
            "tokens_per_s_steady": round(BATCH * BLOCK / med, 1),
            "tokens_per_s_wall": round(iters * BATCH * BLOCK / self.wall_s, 1),
            "returncode": self.returncode,
        }


# -- the two peers ------------------------------------------------------------------------------
def prepare_nanogpt(nanogpt: Path, data: Path, scratch: Path) -> Path:
    """A folder to run nanoGPT's train.py in: data/shakespeare_char made by nanoGPT's own
    prepare.py from ``data`` (placed as the input.txt it looks for, so it downloads nothing).
    train.py reads ``data/`` and ``configurator.py`` from its working directory."""
    work = scratch / "nanogpt"
    ddir = work / "data" / "shakespeare_char"
    ddir.mkdir(parents=True, exist_ok=True)
    shutil.copy(nanogpt / "data" / "shakespeare_char" / "prepare.py", ddir / "prepare.py")
    shutil.copy(data, ddir / "input.txt")
    shutil.copy(nanogpt / "configurator.py", work / "configurator.py")
    # prepare.py imports requests for its download; with input.txt present it is never used
    stub = "import runpy, sys, types; sys.modules.setdefault('requests', types.ModuleType('r'));"
    run = f"{stub} runpy.run_path('prepare.py', run_name='__main__')"
    subprocess.run([sys.executable, "-c", run], cwd=ddir, check=True, capture_output=True)
    return work


# nanoGPT's train.py seeds torch with 1337 (+ a DDP rank offset) and has no setting for it:
# a training seed other than its own is given by running its unmodified train.py with
# torch.manual_seed shifted by SEED - 1337 (its data order and initialisation follow).
SEEDED = (
    "import os, runpy, sys, torch; shift = int(sys.argv.pop(1)); seed = torch.manual_seed; "
    "torch.manual_seed = lambda s: seed(s + shift); sys.argv = sys.argv[1:]; "
    "sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0]))); "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


def nanogpt_run(
    nanogpt: Path, work: Path, iters: int, every: int, out: Path, seed: int = 1337
) -> Run:
    cmd = [
        sys.executable,
        "-c",
        SEEDED,
        str(seed - 1337),
        str(nanogpt / "train.py"),
        str(nanogpt / "config" / "train_shakespeare_char.py"),
        *NANOGPT_RECIPE,
        f"--max_iters={iters}",
        f"--lr_decay_iters={iters}",
        f"--eval_interval={every}",
        # its final weights, for scoring: it otherwise saves only when val loss improved
        "--always_save_checkpoint=True",
        f"--out_dir={out}",
    ]
    return Run("nanoGPT", cmd, work, _env(), out.with_suffix(".log"))


def posemb_run(
    name: str, src: Path, data: Path, iters: int, every: int, out: Path, sets, seed: int = 1337
) -> Run:
    settings = [*POSEMB_RECIPE, f"train.max_steps={iters}", f"train.eval_every={every}"]
    settings += [f"train.seed={seed}", *sets]
    cmd = [sys.executable, "-m", "posemb", "train", "--preset", "shakespeare-char"]
    cmd += ["--data", str(data), "--set", *settings, "--out", str(out)]
    env = _env(PYTHONPATH=str(src), POSEMB_CACHE=str(out.parent / "posemb-cache"))
    return Run(name, cmd, out.parent, env, out.with_suffix(".log"))


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1", **extra)
    return env


def run_together(runs: list[Run]) -> None:
    """Start every run, wait for all; wall time per process."""
    procs = []
    for r in runs:
        f = open(r.log, "w")  # noqa: SIM115 - closed below
        t0 = time.perf_counter()
        procs.append((r, f, t0, subprocess.Popen(r.cmd, cwd=r.cwd, env=r.env, stdout=f, stderr=f)))
    pending = list(procs)
    while pending:
        for item in list(pending):
            r, f, t0, p = item
            if p.poll() is not None:
                r.wall_s, r.returncode = time.perf_counter() - t0, p.returncode
                f.close()
                pending.remove(item)
        time.sleep(0.05)
    for r in runs:
        if r.returncode != 0:
            sys.exit(f"{r.name} failed (exit {r.returncode}); its log: {r.log}")


def nanogpt_steps(log: Path) -> list[float]:
    """Iteration times from nanoGPT's log (``iter N: loss L, time T ms``), first 5 dropped."""
    times = [
        float(m) for m in re.findall(r"^iter \d+: loss [\d.]+, time ([\d.]+)ms", _text(log), re.M)
    ]
    return [t / 1e3 for t in times[5:]]


def posemb_steps(run_dir: Path) -> list[float]:
    """Step times from metrics.jsonl (``elapsed_s`` of consecutive steps), first 5 dropped."""
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x]
    el = [r["elapsed_s"] for r in rows]
    return [b - a for a, b in zip(el, el[1:])][5:]


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


# -- scoring on the same held-out characters ----------------------------------------------------
def val_windows(work: Path) -> tuple[np.ndarray, str]:
    """nanoGPT's validation ids cut into windows of BLOCK ``[w, 64]``, and their text."""
    with open(work / "data" / "shakespeare_char" / "meta.pkl", "rb") as f:
        meta = pickle.load(f)  # nanoGPT's own format (benchmark code, not posemb)
    ids = np.fromfile(work / "data" / "shakespeare_char" / "val.bin", dtype=np.uint16)
    w = len(ids) // BLOCK
    text = "".join(meta["itos"][int(i)] for i in ids[: w * BLOCK])
    return ids[: w * BLOCK].astype(np.int64).reshape(w, BLOCK), text


@torch.inference_mode()
def window_losses(logits_fn, windows: np.ndarray) -> np.ndarray:
    """Per-window mean loss of targets 1..63 (each predicted from its window's prefix)."""
    out = []
    for i in range(0, len(windows), 64):
        x = torch.from_numpy(windows[i : i + 64])
        logits = logits_fn(x)[:, :-1].float()  # [b, 63, V]
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), x[:, 1:], reduction="none")
        out.append(nll.double().mean(1).numpy())
    return np.concatenate(out)


def nanogpt_scorer(nanogpt: Path, out: Path):
    sys.path.insert(0, str(nanogpt))
    try:
        from model import GPT, GPTConfig  # nanoGPT's model.py, from the checkout
    finally:
        sys.path.pop(0)
    ckpt = torch.load(out / "ckpt.pt", map_location="cpu", weights_only=True)
    model = GPT(GPTConfig(**ckpt["model_args"]))
    model.load_state_dict({k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()})
    model.eval()
    return lambda x: model(x, x)[0], int(ckpt["iter_num"])  # with targets: every position


def mean_se(v: np.ndarray) -> tuple[float, float]:
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(len(v)))


# -- the benchmark ------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data = Path(args.data).resolve()
    if not data.is_file():
        sys.exit(f"--data {data} is not a file (nanoGPT's tinyshakespeare.txt: pass --data PATH)")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or REPO / "benchmarks" / "results" / f"side-by-side-{stamp}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    every = min(250, args.iters)
    if args.iters % every:
        sys.exit(f"--iters must be a multiple of {every} (evaluation steps must line up)")
    peer_src = None
    if args.baseline_ref:
        peer_src = baseline_worktree(args.baseline_ref, out)
    nanogpt = Path(args.nanogpt).expanduser().resolve() if args.nanogpt else None
    if nanogpt is None and peer_src is None:
        sys.exit("give --nanogpt PATH (a nanoGPT checkout) and/or --baseline-ref REF")
    work = prepare_nanogpt(nanogpt, data, out) if nanogpt else None
    report = {"machine": machine(), "iters": args.iters, "posemb_sets": args.set, "pairs": []}
    report["command"] = " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])])
    for rep in range(args.repeats):
        peers = []
        if nanogpt:
            peers.append(("nanoGPT", None))
        if peer_src:
            peers.append((f"posemb@{args.baseline_ref}", peer_src))
        for peer_name, src in peers:
            pair = run_pair(args, rep, peer_name, src, nanogpt, work, data, every, out)
            report["pairs"].append(pair)
            print(pair_line(pair), flush=True)
            (out / "results.json").write_text(json.dumps(report, indent=1))
    report["summary"] = summarise(report["pairs"])
    report["machine"]["loadavg_at_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    (out / "results.json").write_text(json.dumps(report, indent=1))
    for line in report["summary"]["lines"]:
        print(line)
    print(f"results: {out / 'results.json'}")
    if peer_src:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(peer_src)])
    return 0


def run_pair(args, rep, peer_name, peer_src, nanogpt, work, data, every, out) -> dict:
    """One pair trained at the same time, then both scored on the same characters."""
    tag = f"{rep + 1}-{re.sub(r'[^A-Za-z0-9]+', '_', peer_name)}"
    seed = 1337 + rep  # both sides: the recipe's seed, then 1338, 1339, ...
    ours_dir = out / f"posemb-{tag}"
    runs = [posemb_run("posemb", REPO / "src", data, args.iters, every, ours_dir, args.set, seed)]
    if peer_src is None:
        runs.append(nanogpt_run(nanogpt, work, args.iters, every, out / f"nanogpt-{tag}", seed))
    else:
        peer_out = out / f"peer-{tag}"
        runs.append(
            posemb_run(peer_name, peer_src / "src", data, args.iters, every, peer_out, [], seed)
        )
    if rep % 2:
        runs.reverse()  # alternate which starts first
    run_together(runs)
    ours, peer = runs if runs[0].name == "posemb" else runs[::-1]
    ours.step_s = posemb_steps(out / f"posemb-{tag}")
    peer_dir = (
        Path(peer.cmd[-1].removeprefix("--out_dir=")) if peer_src is None else Path(peer.cmd[-1])
    )
    peer.step_s = nanogpt_steps(peer.log) if peer_src is None else posemb_steps(peer_dir)
    state = json.loads((ours_dir / "trainer_state.json").read_text())
    return {
        "repeat": rep + 1,
        "seed": seed,
        "peer": peer_name,
        "posemb_compile": state.get("compile"),
        "posemb": ours.summary(args.iters),
        "peer_run": peer.summary(args.iters),
        **score_pair(out / f"posemb-{tag}", peer_dir, peer_src, nanogpt, work, data),
    }


def score_pair(ours_dir, peer_dir, peer_src, nanogpt, work, data) -> dict:
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    from posemb import load

    windows, text = val_windows(work) if work is not None else (None, val_text(data))
    model, tok = load(ours_dir)
    model.eval()
    ids = np.asarray(tok.encode(text), dtype=np.int64).reshape(-1, BLOCK)
    ours = window_losses(lambda x: model(x).logits, ids)
    if peer_src is None:
        peer_fn, _ = nanogpt_scorer(nanogpt, peer_dir)
        peer = window_losses(peer_fn, windows)
    else:
        pmodel, ptok = load(peer_dir)
        pmodel.eval()
        pids = np.asarray(ptok.encode(text), dtype=np.int64).reshape(-1, BLOCK)
        peer = window_losses(lambda x: pmodel(x).logits, pids)
    diff = ours - peer
    return {
        "val_windows": len(ids),
        "val_targets": int(len(ids) * (BLOCK - 1)),
        "val_loss_posemb": mean_se(ours),
        "val_loss_peer": mean_se(peer),
        "val_loss_diff": mean_se(diff),
    }


def val_text(data: Path) -> str:
    """Without nanoGPT: the last 10% of the characters (nanoGPT's split), whole windows of 64."""
    text = data.read_text(encoding="utf-8")
    val = text[int(len(text) * 0.9) :]
    return val[: len(val) // BLOCK * BLOCK]


def baseline_worktree(ref: str, out: Path) -> Path:
    path = Path(tempfile.mkdtemp(prefix="posemb-baseline-", dir=out))
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), ref],
        check=True,
        capture_output=True,
    )
    return path


def summarise(pairs: list[dict]) -> dict:
    """Ratios per peer over the repeats: median and range."""
    lines, by_peer = [], {}
    for p in pairs:
        by_peer.setdefault(p["peer"], []).append(p)
    out = {}
    for peer, ps in by_peer.items():
        steady = [
            p["posemb"]["tokens_per_s_steady"] / p["peer_run"]["tokens_per_s_steady"] for p in ps
        ]
        wall = [p["peer_run"]["wall_s"] / p["posemb"]["wall_s"] for p in ps]
        dl = [p["val_loss_diff"][0] for p in ps]
        out[peer] = {"steady_ratio": steady, "wall_ratio": wall, "val_diff": dl}
        lines.append(
            f"posemb / {peer}: tokens/s steady {_spread(steady)}x, "
            f"over wall time {_spread(wall)}x; "
            f"val loss posemb - {peer} {_spread(dl, '+.4f')} nats "
            f"({len(ps)} pairs, {pairs[0]['val_targets']:,} characters)"
        )
        if len(ps) > 1:  # each pair a training seed: the standard error over seeds
            mean, se = statistics.mean(dl), statistics.stdev(dl) / math.sqrt(len(dl))
            verdict = "a tie (within 2 standard errors)" if abs(mean) <= 2 * se else "not a tie"
            out[peer]["val_diff_over_seeds"] = [mean, se]
            lines.append(
                f"  over {len(ps)} training seeds: posemb - {peer} = {mean:+.4f} ± {se:.4f} "
                f"nats (standard error over seeds): {verdict}"
            )
    out["lines"] = lines
    return out


def _spread(v: list[float], fmt: str = ".3f") -> str:
    med = statistics.median(v)
    return f"{med:{fmt}} ({min(v):{fmt}}-{max(v):{fmt}})" if len(v) > 1 else f"{med:{fmt}}"


def pair_line(p: dict) -> str:
    a, b = p["posemb"], p["peer_run"]
    (la, sa), (lb, sb), (d, sd) = p["val_loss_posemb"], p["val_loss_peer"], p["val_loss_diff"]
    return (
        f"[{p['repeat']}] posemb {a['tokens_per_s_steady']:,.0f} tok/s, {a['wall_s']:.1f} s, val "
        f"{la:.4f}±{sa:.4f} | {p['peer']} {b['tokens_per_s_steady']:,.0f} tok/s, "
        f"{b['wall_s']:.1f} s, val {lb:.4f}±{sb:.4f} | diff {d:+.4f}±{sd:.4f}"
    )


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "loadavg_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def parse_args(argv):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--nanogpt", help="path of a nanoGPT checkout (github.com/karpathy/nanoGPT)")
    p.add_argument("--baseline-ref", help="also run posemb at this git ref beside the current one")
    p.add_argument("--iters", type=int, default=2000, help="training iterations (default 2000)")
    p.add_argument("--repeats", type=int, default=3, help="pairs per peer (default 3)")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="tinyshakespeare.txt")
    p.add_argument("--set", nargs="*", default=[], help="extra posemb settings (key=value)")
    p.add_argument("--out", help="results folder (default benchmarks/results/side-by-side-TIME)")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
