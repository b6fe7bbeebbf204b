"""Transformer and ModelConfig: boundary checks, outputs, presets."""

from __future__ import annotations

import pytest
import torch

from posemb import ModelConfig, PositionOutOfRangeError, Transformer


def test_outputs_and_loss_shift():
    torch.manual_seed(0)
    model = Transformer(ModelConfig.preset("micro"))
    ids = torch.randint(0, 256, (2, 10))
    out = model(ids, labels=ids)
    assert out.logits.shape == (2, 10, 256) and out.hidden_states.shape == (2, 10, 32)
    manual = torch.nn.functional.cross_entropy(
        out.logits[:, :-1].reshape(-1, 256), ids[:, 1:].reshape(-1)
    )
    torch.testing.assert_close(out.loss, manual)
    assert out.cache is None
    hs = model(ids, output_hidden_states=True).hidden_states
    assert len(hs) == model.config.n_layer + 1
    torch.testing.assert_close(hs[-1], out.hidden_states)


def test_encoder_loss_is_per_token_with_ignore():
    model = Transformer(ModelConfig.preset("micro", causal=False))
    ids = torch.randint(0, 256, (1, 6))
    labels = torch.full_like(ids, -100)
    labels[0, 2] = 7
    out = model(ids, labels=labels)
    manual = torch.nn.functional.cross_entropy(out.logits[0, 2:3], torch.tensor([7]))
    torch.testing.assert_close(out.loss, manual)


def test_tied_embeddings():
    model = Transformer(ModelConfig.preset("micro"))
    assert model.lm_head.weight is model.wte.weight
    untied = Transformer(ModelConfig.preset("micro", tie_embeddings=False))
    assert untied.lm_head.weight is not untied.wte.weight


def test_token_id_outside_vocabulary_is_a_value_error():
    model = Transformer(ModelConfig.preset("micro", vocab_size=100))
    with pytest.raises(
        ValueError, match=r"token id 100 is outside the vocabulary of 100 ids \(0–99\)"
    ):
        model(torch.tensor([[1, 100]]))
    with pytest.raises(ValueError, match="token id -1"):
        model(torch.tensor([[-1, 3]]))


def test_sequence_past_the_table_raises_before_lookup():
    model = Transformer(ModelConfig.preset("micro", max_positions=16))
    with pytest.raises(
        PositionOutOfRangeError, match="position 19 is past the end of the learned table \\(16"
    ):
        model(torch.zeros(1, 20, dtype=torch.long))
    out = model(torch.zeros(1, 10, dtype=torch.long), use_cache=True)
    with pytest.raises(PositionOutOfRangeError, match="position 16"):
        model(torch.zeros(1, 7, dtype=torch.long), cache=out.cache)
    with pytest.raises(PositionOutOfRangeError, match="position 40"):
        model(torch.zeros(1, 2, dtype=torch.long), positions=torch.tensor([3, 40]))


def test_overflow_policy_reaches_the_model():
    model = Transformer(
        ModelConfig.preset("micro", max_positions=8, position_options={"overflow": "clamp"})
    )
    assert model(torch.zeros(1, 12, dtype=torch.long)).logits.shape == (1, 12, 256)


@pytest.mark.parametrize("scheme", ["sinusoidal", "rope", "alibi", "t5", "nope"])
def test_schemes_without_a_table_run_past_max_positions(scheme):
    model = Transformer(ModelConfig.preset("micro", max_positions=8, position=scheme))
    assert model(torch.zeros(1, 20, dtype=torch.long)).logits.shape == (1, 20, 256)


def test_generate_slides_past_the_table():
    torch.manual_seed(0)
    model = Transformer(ModelConfig.preset("micro", max_positions=8))
    out = model.generate(torch.zeros(1, 5, dtype=torch.long), max_new_tokens=12, temperature=0)
    assert out.shape == (1, 17)
    ids = out[:, :12]  # the token after 12 tokens comes from the last 7 of them
    expected = model(ids[:, -7:]).logits[:, -1].argmax(-1)
    assert out[0, 12] == expected[0]


def test_generate_sampling_is_reproducible_and_top_k_restricts():
    model = Transformer(ModelConfig.preset("micro"))
    prompt = torch.zeros(1, 3, dtype=torch.long)
    a = model.generate(
        prompt, 8, temperature=1.0, top_k=5, generator=torch.Generator().manual_seed(1)
    )
    b = model.generate(
        prompt, 8, temperature=1.0, top_k=5, generator=torch.Generator().manual_seed(1)
    )
    assert torch.equal(a, b)
    one = model.generate(prompt, 4, temperature=1.0, top_k=1)
    assert torch.equal(one, model.generate(prompt, 4, temperature=0))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(d_model=30, n_head=4), "d_model=30 is not divisible by n_head=4"),
        (dict(position="rotary"), "Did you mean 'rope'"),
        (dict(norm="batchnorm"), "unknown norm"),
        (dict(dropout=1.5), "dropout must be in"),
        (
            dict(position="learned", position_options={"overflo": "clamp"}),
            "Did you mean 'overflow'",
        ),
        (dict(n_layer=0), "n_layer must be a positive integer"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**kwargs)


def test_config_from_dict_rejects_unknown_keys_and_round_trips():
    with pytest.raises(ValueError, match="Did you mean 'n_layer'"):
        ModelConfig.from_dict({"n_layers": 3})
    cfg = ModelConfig.preset("gpt2", n_layer=2)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert (cfg.vocab_size, cfg.max_positions, cfg.d_model, cfg.norm_eps) == (
        50257,
        1024,
        768,
        1e-5,
    )
    with pytest.raises(ValueError, match="Did you mean 'gpt2'"):
        ModelConfig.preset("gtp2")


def test_rmsnorm_no_bias_swish_variant_runs():
    model = Transformer(
        ModelConfig.preset("micro", norm="rmsnorm", bias=False, activation="silu", position="rope")
    )
    assert not any("bias" in n for n, _ in model.named_parameters())
    assert torch.isfinite(model(torch.zeros(1, 5, dtype=torch.long)).logits).all()


def test_labels_are_checked_at_the_boundary():
    model = Transformer(ModelConfig.preset("micro"))
    ids = torch.randint(0, 256, (2, 8))
    with pytest.raises(
        ValueError, match=r"labels must have input_ids' shape \(2, 8\), got \(2, 4\)"
    ):
        model(ids, labels=ids[:, :4])
    with pytest.raises(TypeError, match="labels must be an integer tensor"):
        model(ids, labels=ids.float())
    with pytest.raises(ValueError, match="label 300 is outside the vocabulary of 256 ids"):
        model(ids, labels=torch.full_like(ids, 300))
    labels = ids.clone()
    labels[:, :3] = -100  # ignored slots are fine
    assert torch.isfinite(model(ids, labels=labels).loss)


def test_non_tensor_inputs_and_a_cache_of_another_batch_are_clear_errors():
    model = Transformer(ModelConfig.preset("micro")).eval()
    with pytest.raises(TypeError, match="input_ids must be a LongTensor"):
        model([[1, 2, 3]])
    with pytest.raises(TypeError, match="positions must be an integer tensor"):
        model(torch.zeros(1, 3, dtype=torch.long), positions=[0, 1, 2])
    cache = model(torch.zeros(1, 4, dtype=torch.long), use_cache=True).cache
    with pytest.raises(ValueError, match="the cache holds a batch of 1 rows but input_ids has 2"):
        model(torch.zeros(2, 1, dtype=torch.long), cache=cache)


def test_empty_step_after_a_padded_prefill_with_offset_rows():
    model = Transformer(ModelConfig.preset("micro", position_options={"offset": 2})).eval()
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    cache = model(torch.randint(0, 256, (2, 4)), attention_mask=mask, use_cache=True).cache
    assert model(torch.zeros(2, 0, dtype=torch.long), cache=cache).logits.shape == (2, 0, 256)


@pytest.mark.parametrize(
    "options, fix",
    [
        ({"dim": 8}, "model.d_model"),
        ({"max_positions": 8}, "model.max_positions"),
        ({"causal": False}, "model.causal"),
    ],
)
def test_position_options_cannot_override_the_models_own_context(options, fix):
    position = "alibi" if "causal" in options else "learned"
    with pytest.raises(ValueError, match=f"is set by the model itself; set {fix} instead"):
        ModelConfig(position=position, position_options=options)


@pytest.mark.parametrize("field", ["norm_eps", "init_std"])
def test_norm_eps_and_init_std_are_validated(field):
    with pytest.raises(ValueError, match=f"{field} must be a finite number >= 0"):
        ModelConfig(**{field: -1.0})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_mask_and_positions_follow_cuda_tokens():
    model = Transformer(ModelConfig.preset("micro")).cuda().eval()
    ids = torch.randint(0, 256, (2, 6), device="cuda")
    out = model(ids, positions=torch.arange(6), attention_mask=torch.ones(2, 6))
    assert out.logits.device.type == "cuda"


def test_implicit_positions_are_not_read_back_from_the_device(monkeypatch):
    """Positions the model builds itself are range-checked from ints: no tensor read per step."""
    from posemb.positional.base import PositionalScheme

    model = Transformer(ModelConfig.preset("micro"))
    reads = []
    monkeypatch.setattr(PositionalScheme, "check_positions", lambda self, p: reads.append(p))
    model(torch.zeros(2, 10, dtype=torch.long))
    assert reads == []
    model(torch.zeros(1, 3, dtype=torch.long), positions=torch.tensor([4, 5, 6]))
    assert len(reads) == 1  # explicit positions: read once, by the model
