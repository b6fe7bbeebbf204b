"""Fully sharded training on CPU (``train.parallel=fsdp``, FSDP2): two gloo processes under
torchrun against the same run under DDP.

Each rank draws the same windows under FSDP as under DDP (its own shard of the stream, its
own data RNG seeded [seed, rank]) and both average the two ranks' gradients, FSDP by a
reduce-scatter, DDP by an all-reduce: the runs differ only in float summation order, so
their losses agree to ~1e-5 (4.6e-6 measured on the weights after 60 steps), far tighter
than the 1-vs-2-process tolerance of test_ddp.py. Checkpoints are gathered to whole
tensors and written by rank 0: the same files as any run, and a resume is bit-identical.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import posemb
from kit import assert_same_tensors, read_metrics, run_tensors
from launchkit import STEPS, interrupt, launch, rank_digests, train_args  # batch 8, 60 steps

pytestmark = pytest.mark.slow

TOLERANCE = 1e-4  # nats: FSDP vs DDP, the same batches (summation order only)


@pytest.fixture(scope="module")
def runs(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The same 2-process training under DDP and under FSDP."""
    root = tmp_path_factory.mktemp("fsdp")
    ddp, fsdp = root / "ddp", root / "fsdp"
    procs = [
        launch(train_args(corpus, ddp, "train.parallel=ddp"), ddp, 2, root / "logs-ddp"),
        launch(train_args(corpus, fsdp, "train.parallel=fsdp"), fsdp, 2, root / "logs-fsdp"),
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert procs[0].returncode == 0, outs[0]
    assert procs[1].returncode == 0, outs[1]
    return {"ddp": ddp, "fsdp": fsdp, "out": outs[1], "logs": root / "logs-fsdp"}


def test_fsdp_trains_as_ddp_does(runs):
    # each rank holds other parameters (its shards), where DDP's replicas are identical
    digests = rank_digests(runs["logs"])
    assert len(digests[0]) == STEPS and all(a != b for a, b in zip(*digests))
    m_ddp, m_fsdp = read_metrics(runs["ddp"]), read_metrics(runs["fsdp"])
    assert [m["step"] for m in m_fsdp] == list(range(1, STEPS + 1))
    assert m_fsdp[0]["train_loss"] - m_fsdp[-1]["val_loss"] > 1.5  # it trained
    for a, b in zip(m_ddp, m_fsdp):
        assert abs(a["train_loss"] - b["train_loss"]) < TOLERANCE, (a, b)
        assert abs(a.get("val_loss", 0.0) - b.get("val_loss", 0.0)) < TOLERANCE, (a, b)
    weights_ddp, weights_fsdp = run_tensors(runs["ddp"]), run_tensors(runs["fsdp"])
    for name, w in weights_ddp.items():
        torch.testing.assert_close(weights_fsdp[name], w, rtol=0, atol=1e-4)


def test_an_fsdp_checkpoint_is_a_whole_run(runs):
    """Rank 0 alone writes, whole tensors (not one rank's shard), the files of any run."""
    ddp, fsdp, out = runs["ddp"], runs["fsdp"], runs["out"]
    assert "wrote" not in out and out.count("trained ") == 1, out  # the rank guard never fired
    assert "view tensor" not in out  # blocks return no views of their keys and values
    assert sorted(p.name for p in fsdp.iterdir()) == sorted(p.name for p in ddp.iterdir())
    moments_ddp = run_tensors(ddp, "optimizer.safetensors")
    moments_fsdp = run_tensors(fsdp, "optimizer.safetensors")
    assert {k: v.shape for k, v in moments_fsdp.items()} == {
        k: v.shape for k, v in moments_ddp.items()
    }
    state = json.loads((fsdp / "trainer_state.json").read_text())
    assert state["step"] == STEPS and state["world_size"] == 2
    model, _ = posemb.load(fsdp)  # as eval and generate read it
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in posemb.load(ddp)[0].parameters()
    )


def test_ctrl_c_then_resume_under_fsdp_is_bit_identical(runs, corpus, tmp_path):
    """Interrupted mid-run (every rank gathers its shards for the save), resumed under FSDP
    (every rank keeps its shard of the whole files): the end is the uninterrupted run's."""
    run = tmp_path / "run"
    args = train_args(corpus, run, "train.parallel=fsdp", "train.eval_every=1")
    step, out = interrupt(args, run, tmp_path)
    assert 0 < step < STEPS, f"no checkpoint from the interrupt (step {step}):\n{out}"

    proc = launch(["train", "--resume", run], run, 2, tmp_path / "logs")
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out
    assert_same_tensors(run_tensors(run), run_tensors(runs["fsdp"]))
    assert_same_tensors(
        run_tensors(run, "optimizer.safetensors"),
        run_tensors(runs["fsdp"], "optimizer.safetensors"),
    )
    assert [m["step"] for m in read_metrics(run)] == list(range(1, STEPS + 1))
