"""Training recipes and the optimiser: position recipes (start | random | offset), loss goes
down on every data source and tokenizer, the weight-decay policy, the lr schedule."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import posemb
from kit import fast_config, read_metrics, run_tensors
from posemb.model.optim import param_groups
from posemb.train import TrainConfig, train
from posemb.train.schedule import lr_at
from posemb.train.stream import assign_positions

L, MAX_POS = 16, 64  # training length and table size of the recipe runs


def init_table(cfg) -> torch.Tensor:
    """The position table a run starts from (the trainer seeds torch, then builds the model)."""
    torch.manual_seed(cfg.train.seed)
    return posemb.Transformer(cfg.model).position_table().detach().clone()


def trained_table(
    recipe: str, tmp_path: Path, **overrides
) -> tuple[torch.Tensor, torch.Tensor, object]:
    settings = dict(
        train__positions=recipe,
        train__seq_len=L,
        model__max_positions=MAX_POS,
        train__max_steps=20,
        train__checkpoint_every=20,
        data__source="synthetic:copy",
        train__weight_decay=0.5,
    )
    cfg = fast_config(**{**settings, **overrides})
    train(cfg, tmp_path / recipe)
    return init_table(cfg), run_tensors(tmp_path / recipe)["pos.weight"], cfg


def moved(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """[rows] bool: which rows of the table changed."""
    return (before != after).any(dim=1)


def test_start_trains_rows_below_L_and_leaves_the_rest_exactly_at_init(tmp_path):
    init, final, _ = trained_table("start", tmp_path)
    # every position of a training sequence has a target (a causal LM reads problems of L + 1
    # tokens, the last one only as position L - 1's target): rows 0 .. L-1 all train
    assert moved(init, final)[:L].all()
    # rows >= L: no gradient and no decay, so bit-identical
    assert torch.equal(final[L:], init[L:])


def test_decay_positions_shrinks_untrained_rows_by_the_decay_factor(tmp_path):
    init, final, cfg = trained_table("start", tmp_path, train__decay_positions=True)
    tc = cfg.train
    factor = math.prod(1 - lr_at(s, tc) * tc.weight_decay for s in range(tc.max_steps))
    assert factor < 0.99
    torch.testing.assert_close(final[L:], init[L:] * factor, rtol=1e-5, atol=1e-7)


def test_random_positions_train_every_row_past_L(tmp_path):
    init, final, _ = trained_table("random", tmp_path)
    rows = moved(init, final)
    # every row, the top one too (the last position of any draw that reaches it has a target)
    assert rows.all(), f"untrained rows: {(~rows).nonzero().flatten().tolist()}"


def test_offset_positions_train_rows_past_L(tmp_path):
    init, final, _ = trained_table("offset", tmp_path)
    rows = moved(init, final)
    # every row in [L, MAX_POS - L] is inside most windows' reach; the last few are rarer
    assert rows[L : MAX_POS - L + 1].all()
    assert rows[L:].float().mean() > 0.9
    assert not rows[-1]  # always the last position when reached (see the random recipe)


@pytest.mark.parametrize("recipe", ["random", "offset"])
def test_recipe_positions_are_valid(recipe):
    rng = np.random.default_rng(0)
    pos = assign_positions(recipe, 64, L, MAX_POS, rng)
    assert pos.shape == (64, L) and pos.dtype == torch.int64
    assert pos.min() >= 0 and pos.max() < MAX_POS
    steps = pos.diff(dim=1)
    if recipe == "random":  # sorted, distinct, and spread over the whole table
        assert (steps > 0).all() and pos.max() >= MAX_POS - 4
    else:  # consecutive from a random start
        assert (steps == 1).all() and len(set(pos[:, 0].tolist())) > 10
    assert assign_positions("start", 4, L, MAX_POS, rng) is None
    with pytest.raises(ValueError, match="max_positions"):
        assign_positions(recipe, 1, MAX_POS + 1, MAX_POS, rng)


def test_stretch_positions_are_evenly_spaced_fractions_inside_the_table():
    rng = np.random.default_rng(0)
    t, n, stretch = 16, 16, 8.0  # the sweep's setting: the table ends at the training length
    pos = assign_positions("stretch", 2000, t, n, rng, stretch=stretch)
    assert pos.shape == (2000, t) and pos.dtype == torch.float32
    assert pos.min() >= 0 and pos.max() <= n - 1
    spacing = pos.diff(dim=1)
    torch.testing.assert_close(spacing, spacing[:, :1].expand(-1, t - 1))  # one per row
    s = spacing[:, 0].double()
    lowest = (t - 1) / (stretch * t - 1)  # a sequence read as 8x longer: the 8t interpolation's
    assert s.min() >= lowest - 1e-6 and s.max() <= 1 + 1e-6
    # log-uniform stretches u = ((t-1)/s + 1)/t: every octave of [1, 8] holds about a third
    u = ((t - 1) / s + 1) / t
    thirds = [((u >= a) & (u < 2 * a)).double().mean().item() for a in (1, 2, 4)]
    assert all(abs(x - 1 / 3) < 0.05 for x in thirds), thirds
    assert pos[:, 0].max() > 5  # offsets spread the squeezed sequences over the table
    again = assign_positions("stretch", 2000, t, n, np.random.default_rng(0), stretch=stretch)
    assert torch.equal(pos, again)  # the data RNG alone decides: --resume repeats it exactly
    plain = assign_positions("stretch", 8, t, n, rng, stretch=1.0)
    assert torch.equal(plain, torch.arange(t).float().expand(8, t))  # no stretch: 0 .. t-1


def test_stretch_trains_every_row_and_is_refused_for_integer_schemes(tmp_path):
    init, final, cfg = trained_table("stretch", tmp_path, model__max_positions=L)
    assert cfg.model.max_positions == L
    assert moved(init, final).all()  # the last row too: fractional positions end below it
    with pytest.raises(ValueError, match="model.position='t5' cannot read"):
        train(
            fast_config(
                model__position="t5", train__positions="stretch", data__source="synthetic:copy"
            ),
            tmp_path / "t5",
        )
    with pytest.raises(ValueError, match="train.stretch must be a finite number >= 1.0"):
        fast_config(train__stretch=0.5)


def test_seq_len_past_the_table_is_refused_for_start_but_not_for_bias_schemes(tmp_path):
    with pytest.raises(ValueError, match="max_positions"):
        train(
            fast_config(train__seq_len=80, train__max_steps=1, data__source="synthetic:copy"),
            tmp_path / "a",
        )
    # schemes without a table have no limit: ALiBi trains on 80 tokens with max_positions=64
    result = train(
        fast_config(
            train__seq_len=80,
            train__max_steps=1,
            model__position="alibi",
            data__source="synthetic:copy",
        ),
        tmp_path / "b",
    )
    assert result.step == 1 and math.isfinite(result.train_loss)


# -- loss goes down ---------------------------------------------------------------------------
def _write_dir(root: Path, corpus: Path) -> Path:
    text = corpus.read_text(encoding="utf-8")
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text(text[: len(text) // 2], encoding="utf-8")
    (root / "sub" / "b.md").write_text(text[len(text) // 2 :], encoding="utf-8")
    return root


SOURCES = [
    pytest.param("stdlib", "byte", id="stdlib"),
    pytest.param("{file}", "byte", id="file"),
    pytest.param("{dir}", "byte", id="directory"),
    pytest.param("{dir}/**/*.*", "byte", id="glob"),
    pytest.param("synthetic:copy", "byte", id="synthetic-copy"),
    pytest.param("synthetic:sort", "byte", id="synthetic-sort"),
    pytest.param("hf:text:{file}", "byte", id="hf-text"),
    pytest.param("{file}", "char", id="char-tokenizer"),
    pytest.param("{file}", "bpe", id="bpe-tokenizer"),
]


@pytest.mark.parametrize("source, tokenizer", SOURCES)
def test_loss_goes_down(source, tokenizer, corpus, tmp_path, monkeypatch):
    if source.startswith("hf:"):
        datasets = pytest.importorskip("datasets")
        monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
        monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
        datasets.disable_progress_bars()
    if tokenizer == "bpe":
        pytest.importorskip("tokenizers")
    if "{dir}" in source:
        _write_dir(tmp_path / "texts", corpus)
    spec = source.format(file=corpus, dir=tmp_path / "texts")
    run = tmp_path / "run"
    result = train(
        fast_config(
            data__source=spec,
            data__tokenizer=tokenizer,
            data__vocab_size=512,
            train__max_steps=40,
            train__lr=3e-3,
            train__checkpoint_every=40,
        ),
        run,
    )
    losses = [m["train_loss"] for m in read_metrics(run)]
    vals = [m["val_loss"] for m in read_metrics(run) if "val_loss" in m]
    assert len(losses) == 40 and all(math.isfinite(x) for x in losses)
    first, last = np.mean(losses[:3]), np.mean(losses[-3:])
    # from about ln(vocab) to clearly below it: byte/char runs drop ~2 nats in 40 steps, BPE ~0.8
    assert last < first - 0.4, f"train loss {first:.3f} -> {last:.3f}"
    assert vals[-1] < vals[0] - 0.3, f"val loss {vals}"
    assert result.val_loss == pytest.approx(vals[-1], abs=1e-6)
    model, tok = posemb.load(run)
    assert tok.kind == tokenizer and model.config.vocab_size >= tok.vocab_size


# -- weight decay policy ---------------------------------------------------------------------
@pytest.mark.parametrize("scheme", posemb.SCHEMES)
@pytest.mark.parametrize("decay_positions", [False, True])
def test_weight_decay_policy(scheme, decay_positions):
    cfg = posemb.ModelConfig(
        vocab_size=64, max_positions=32, n_layer=2, n_head=2, d_model=16, position=scheme
    )
    model = posemb.Transformer(cfg)
    tc = TrainConfig(weight_decay=0.1, decay_positions=decay_positions)
    groups = param_groups(model, tc.weight_decay, tc.decay_positions)
    names = {id(p): n for n, p in model.named_parameters()}
    by_decay = {g["weight_decay"]: {names[id(p)] for p in g["params"]} for g in groups}
    decayed, exempt = by_decay[0.1], by_decay[0.0]
    assert decayed.isdisjoint(exempt)
    assert decayed | exempt == set(names.values())  # every parameter exactly once (tied head too)

    positional = {names[id(p)] for p in model.position_parameters()}
    if scheme in ("learned", "t5", "shaw"):
        assert positional, f"{scheme} should have trainable position parameters"
    # exactly the tensors a checkpoint names pos.* (a shared scheme) or layer_pos.N.* (per layer)
    assert positional == {n for n in names.values() if n.startswith(("pos.", "layer_pos."))}
    norms_and_biases = {
        n for n in names.values() if n.endswith(".bias") or ".ln_" in n or n.startswith("ln_f")
    }
    assert norms_and_biases <= exempt
    assert "wte.weight" in decayed
    assert {
        n for n in names.values() if n.endswith(("qkv.weight", "fc.weight", "proj.weight"))
    } <= decayed
    if decay_positions:
        assert positional <= decayed
    else:
        assert positional <= exempt


# -- learning-rate schedule ------------------------------------------------------------------
def test_lr_schedule_warmup_then_cosine():
    tc = TrainConfig(lr=1e-3, min_lr=1e-4, warmup_steps=10, max_steps=110)
    lrs = [lr_at(s, tc) for s in range(tc.max_steps + 1)]
    # linear warmup: lr * (s + 1) / (warmup + 1)
    assert lrs[:10] == pytest.approx([1e-3 * (s + 1) / 11 for s in range(10)])
    assert lrs[10] == pytest.approx(1e-3)  # the peak, at the end of warmup
    assert lrs[60] == pytest.approx((1e-3 + 1e-4) / 2)  # half-way through the cosine
    assert lrs[35] == pytest.approx(1e-4 + 0.5 * (1 + math.cos(math.pi / 4)) * 9e-4)
    assert lrs[110] == pytest.approx(1e-4)  # ends at min_lr
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:11]))
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lr_at(500, tc) == pytest.approx(1e-4)  # past max_steps (a resume that raised it): stays
    assert lr_at(0, TrainConfig(lr=1e-3, warmup_steps=0, max_steps=10)) == pytest.approx(1e-3)


def test_trainer_uses_the_schedule(tmp_path):
    cfg = fast_config(
        train__max_steps=12,
        train__warmup_steps=4,
        train__lr=2e-3,
        train__min_lr=2e-4,
        data__source="synthetic:copy",
    )
    train(cfg, tmp_path / "run")
    logged = [m["lr"] for m in read_metrics(tmp_path / "run")]
    assert logged == pytest.approx([lr_at(s, cfg.train) for s in range(12)])


def test_encoder_trains_on_corrupted_tokens_not_on_copying():
    """model.causal=false: inputs are corrupted at ~15% of positions, loss only there."""
    import numpy as np
    import torch

    from posemb.train.stream import corrupt_tokens

    x = torch.randint(0, 256, (8, 64))
    inputs, labels = corrupt_tokens(x, 256, np.random.default_rng(0))
    chosen = labels != -100
    assert chosen.any(dim=1).all()
    assert 0.08 < chosen.float().mean() < 0.25
    assert torch.equal(labels[chosen], x[chosen])
    assert torch.equal(inputs[~chosen], x[~chosen])
    assert (inputs[chosen] != x[chosen]).float().mean() > 0.9  # replaced by other ids
