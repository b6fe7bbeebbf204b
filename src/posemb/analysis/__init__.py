"""Diagnostics of learned position tables: what a table learned, and which rows it never did.

- :mod:`.table`: pure functions on a ``[n, d]`` table (cosine, PCA, spectrum, norms,
  untrained rows, nearest-neighbour offsets), float64.
- :mod:`.load`: find a table in a posemb run, a safetensors file or a Hugging Face directory.
- :mod:`.summary`: all diagnostics of one table, its JSON summary and plain reading.
- :mod:`.plots`: PNGs (matplotlib, Agg). :mod:`.analyze`: ``analyze()``, the whole job.

Example::

    from posemb.analysis import analyze
    result = analyze("runs/a", "runs/a/analysis")
    result.summary["untrained"]["ranges"]     # [[127, 255]]
"""

from .analyze import AnalyzeResult, analyze
from .load import LoadedTable, load_table
from .summary import TableAnalysis, analyze_table, plain_reading

__all__ = [
    "AnalyzeResult",
    "LoadedTable",
    "TableAnalysis",
    "analyze",
    "analyze_table",
    "load_table",
    "plain_reading",
]
