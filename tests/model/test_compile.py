"""torch.compile(fullgraph=True): no graph breaks, and no recompilation from step to step."""

from __future__ import annotations

import pytest
import torch

import posemb
from posemb import ModelConfig, Transformer

dynamo_testing = pytest.importorskip("torch._dynamo.testing")


def train_steps(model, compiled, steps, positions_fn=None):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for step in range(steps):
        g = torch.Generator().manual_seed(step)
        ids = torch.randint(0, 256, (2, 16), generator=g)
        positions = positions_fn(g) if positions_fn else None
        loss = compiled(ids, positions=positions, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("scheme", posemb.SCHEMES)
def test_fullgraph_training_step_without_recompiles(scheme):
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = Transformer(ModelConfig.preset("micro", position=scheme))
    counter = dynamo_testing.CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(model, fullgraph=True, backend=counter)
    losses = train_steps(model, compiled, 3)
    assert counter.frame_count == 1, f"{scheme}: compiled {counter.frame_count} times in 3 steps"
    torch.manual_seed(0)
    eager = Transformer(ModelConfig.preset("micro", position=scheme))
    assert losses == pytest.approx(train_steps(eager, eager, 3), rel=1e-4, abs=1e-5)


def test_random_positions_do_not_recompile():
    """Randomised-position training passes a new position tensor every step."""
    torch._dynamo.reset()
    model = Transformer(ModelConfig.preset("micro", max_positions=64))
    counter = dynamo_testing.CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(model, fullgraph=True, backend=counter)

    def positions(g):
        return torch.randperm(64, generator=g)[:16].sort().values.expand(2, 16)

    train_steps(model, compiled, 3, positions)
    assert counter.frame_count == 1


@pytest.mark.slow
@pytest.mark.compiled
def test_inductor_compiled_step_matches_eager():
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = Transformer(ModelConfig.preset("micro"))
    compiled = torch.compile(model, fullgraph=True)
    got = train_steps(model, compiled, 2)
    torch.manual_seed(0)
    eager = Transformer(ModelConfig.preset("micro"))
    assert got == pytest.approx(train_steps(eager, eager, 2), rel=1e-3)


def stretched(g):
    """The stretch recipe's fractional positions: a random spacing and offset per step."""
    spacing = 0.25 + 0.75 * torch.rand((), generator=g)
    start = torch.rand((), generator=g) * (63 - 15 * spacing)
    return (start + spacing * torch.arange(16)).expand(2, 16)


def test_fractional_positions_compile_fullgraph_without_recompiles():
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = Transformer(ModelConfig.preset("micro", max_positions=64))
    counter = dynamo_testing.CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(model, fullgraph=True, backend=counter)
    losses = train_steps(model, compiled, 3, stretched)
    assert counter.frame_count == 1, f"compiled {counter.frame_count} times in 3 steps"
    torch.manual_seed(0)
    eager = Transformer(ModelConfig.preset("micro", max_positions=64))
    assert losses == pytest.approx(train_steps(eager, eager, 3, stretched), rel=1e-4, abs=1e-5)


@pytest.mark.slow
@pytest.mark.compiled
def test_inductor_compiled_fractional_lookup_matches_eager():
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = Transformer(ModelConfig.preset("micro", max_positions=64))
    compiled = torch.compile(model, fullgraph=True)
    got = train_steps(model, compiled, 2, stretched)
    torch.manual_seed(0)
    eager = Transformer(ModelConfig.preset("micro", max_positions=64))
    assert got == pytest.approx(train_steps(eager, eager, 2, stretched), rel=1e-3)
