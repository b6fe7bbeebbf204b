"""The seed's example: without positions a bidirectional encoder cannot tell word order.

"the cat chased the dog" and "the dog chased the cat" are permutations of one multiset of
tokens. Self-attention without positions is permutation-equivariant, so an encoder with
``nope`` maps permuted inputs to permuted outputs and equal pooled outputs; a learned table
breaks that, and a causal mask alone already implies positions.
"""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from posemb import ModelConfig, Transformer

CAT = list(b"the cat chased the dog")
DOG = list(b"the dog chased the cat")


def encoder(position: str, causal: bool = False) -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig.preset("micro", position=position, causal=causal)).eval()


def pooled(model: Transformer, ids: list[int]) -> torch.Tensor:
    return model(torch.tensor([ids])).hidden_states.mean(dim=1)[0]  # [d]


NOPE_ENCODER = encoder("nope")
LEARNED_ENCODER = encoder("learned")


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 255), min_size=2, max_size=24), st.randoms(use_true_random=False))
def test_nope_encoder_is_permutation_equivariant(tokens, rnd):
    perm = list(range(len(tokens)))
    rnd.shuffle(perm)
    ids = torch.tensor([tokens])
    permuted = ids[:, perm]
    out = NOPE_ENCODER(ids).hidden_states
    out_p = NOPE_ENCODER(permuted).hidden_states
    torch.testing.assert_close(out_p, out[:, perm], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out_p.mean(1), out.mean(1), atol=1e-5, rtol=1e-5)


def test_cat_and_dog_are_indistinguishable_without_positions():
    assert sorted(CAT) == sorted(DOG)
    torch.testing.assert_close(
        pooled(NOPE_ENCODER, CAT), pooled(NOPE_ENCODER, DOG), atol=1e-5, rtol=1e-5
    )


def test_learned_table_tells_them_apart():
    diff = (pooled(LEARNED_ENCODER, CAT) - pooled(LEARNED_ENCODER, DOG)).abs().max()
    assert diff > 1e-3


@settings(max_examples=10, deadline=None)
@given(st.lists(st.integers(0, 255), min_size=3, max_size=16, unique=True))
def test_learned_encoder_is_not_permutation_equivariant(tokens):
    ids = torch.tensor([tokens])
    rev = ids.flip(1)
    out, out_r = LEARNED_ENCODER(ids).hidden_states, LEARNED_ENCODER(rev).hidden_states
    assert (out_r - out.flip(1)).abs().max() > 1e-4


def test_causal_nope_still_tells_them_apart():
    model = encoder("nope", causal=True)
    diff = (pooled(model, CAT) - pooled(model, DOG)).abs().max()
    assert diff > 1e-3
