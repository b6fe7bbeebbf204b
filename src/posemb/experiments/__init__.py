"""Experiments: train several models, then evaluate them on the same text.

The layer above training (:mod:`posemb.train`) and evaluation (:mod:`posemb.eval`): an
experiment plans models, trains (or resumes) each into its own run folder and scores them
all with the one instrument, so any two of its records are a paired comparison.

- :mod:`.sweep`: one model per positional scheme at length L, scored at L..8L with every
  way past a learned table's end (``posemb sweep``, the demo's language models).
- :mod:`.finetune`: fine-tuning after each extension method, and its compute-matched
  baseline from scratch (``posemb sweep --finetune``).
- :mod:`.tasks`: the sweep on synthetic tasks, exact match by length (``--tasks``).
- :mod:`.order`: the who-chased-whom encoders, with a learned table and without positions.
"""
