"""Bad input to the model: refused at the boundary with the setting and the fix
(docs/DESIGN.md, "Reliability rules").

- a model nobody can allocate is refused before allocation, naming the settings that
  size it, the estimate in GiB and the memory available; reasonable sizes (GPT-2 124M)
  still build;
- a forward with labels and nothing to score is an error, not a silent NaN loss;
- attention masks hold 0 and 1 only (NaN is not "a token").
"""

from __future__ import annotations

import pytest
import torch

from posemb import ModelConfig, Transformer
from posemb.model.memory import check_training_fits, model_elements
from posemb.positional import memory
from posemb.positional.memory import SizeTooLargeError

BIG = 10**12


@pytest.mark.parametrize(
    "field, needle",
    [
        ("max_positions", "model.max_positions or model.d_model"),
        ("d_model", "model.n_layer or model.d_model"),
        ("vocab_size", "model.vocab_size or model.d_model"),
        ("n_layer", "model.n_layer or model.d_model"),
    ],
)
def test_a_model_nobody_can_allocate_is_refused_naming_its_settings(field, needle):
    cfg = ModelConfig.preset("micro", **{field: BIG})
    with pytest.raises(SizeTooLargeError, match=r"needs at least [\d.e+,]+ GiB, more than") as e:
        Transformer(cfg)
    assert needle in str(e.value) and "parameters" in str(e.value)


def test_the_model_refusal_comes_before_any_allocation(monkeypatch):
    """1.6 GB of weights with 1 GiB free is refused, though this machine could build it."""
    cfg = ModelConfig(vocab_size=100_000, d_model=4096, n_head=32, n_layer=1)
    monkeypatch.setattr(memory, "_host_available", lambda: 2**30)
    built = []
    monkeypatch.setattr(torch.nn.Embedding, "reset_parameters", lambda self: built.append(self))
    with pytest.raises(SizeTooLargeError, match="model.vocab_size or model.d_model"):
        Transformer(cfg)
    assert built == []  # not one layer was made


def test_the_gpt2_124m_preset_still_builds():
    model = Transformer(ModelConfig.preset("gpt2-124m"))
    count = model.num_parameters()
    assert 124_000_000 < count < 125_000_000
    assert model_elements(model.config) <= count  # the estimate is a lower bound


def test_training_that_cannot_fit_names_the_batch(monkeypatch):
    cfg = ModelConfig.preset("micro")
    with pytest.raises(SizeTooLargeError, match=r"train\.batch_size.*train\.seq_len") as e:
        check_training_fits(cfg, BIG, 64, "cpu")
    assert "activations" in str(e.value) and "AdamW" in str(e.value)
    check_training_fits(ModelConfig.preset("gpt2-124m"), 1, 1024, "cpu")  # reasonable: fits


def test_transformer_wants_a_model_config():
    with pytest.raises(TypeError, match="ModelConfig"):
        Transformer({"vocab_size": 256})


@pytest.fixture(scope="module")
def model() -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig.preset("micro"))


@pytest.mark.parametrize("causal", [True, False])
def test_empty_input_with_labels_is_an_error_not_a_nan_loss(causal):
    m = Transformer(ModelConfig.preset("micro", causal=causal))
    ids = torch.zeros(1, 0, dtype=torch.long)
    with pytest.raises(ValueError, match="no token to score"):
        m(ids, labels=ids)


def test_nothing_scored_is_an_error(model):
    ids = torch.randint(0, 256, (2, 8))
    with pytest.raises(ValueError, match=r"no token to score.*-100"):
        model(ids, labels=torch.full_like(ids, -100))
    one = ids[:, :1]  # a causal LM scores token i+1 from position i: one token scores nothing
    with pytest.raises(ValueError, match="two tokens"):
        model(one, labels=one)
    labels = torch.full_like(ids, -100)
    labels[0, 3] = 7  # one scored token is enough
    assert torch.isfinite(model(ids, labels=labels).loss)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0.5, 3.0])
def test_attention_mask_with_other_values_than_zero_and_one(model, value):
    ids = torch.randint(0, 256, (2, 6))
    mask = torch.ones(2, 6)
    mask[0, 0] = value
    with pytest.raises(ValueError, match=r"attention_mask must hold 1 \(token\) and 0"):
        model(ids, attention_mask=mask)


def test_attention_mask_of_the_wrong_type(model):
    ids = torch.randint(0, 256, (1, 4))
    with pytest.raises(TypeError, match="attention_mask must be a tensor"):
        model(ids, attention_mask=[[1, 1, 1, 1]])
