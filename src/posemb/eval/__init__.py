"""Evaluation: length generalisation, the order probe, sweeps and reports."""
