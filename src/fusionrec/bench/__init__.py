"""Benchmarks behind ``fusionrec bench``: each suite returns metrics, :func:`measure` makes them rows.

- ``measurement.py``: :func:`measure` runs one measurement and adds its provenance; ``rows.py`` appends
  rows atomically to ``benchmarks/results/<suite>.jsonl`` and reads them back;
  ``provenance.py`` (commit, dirty, command, machine) and ``datasets.py`` (checksums, skip when absent).
- ``report.py`` renders the tables that ``tables.py`` declares into BENCHMARKS.md.
- the suites: ``baselines.py`` (also the fusion ablation), ``ranking.py``, ``cv.py``, ``kg.py``,
  ``social.py``, ``explain.py``.

Examples
--------
>>> from fusionrec.bench import measure, append_row
>>> rows = measure(lambda: {"NDCG@10": 0.1}, suite="demo", bench="demo", dataset="synthetic", seed=0,
...                command="fusionrec bench demo")  # doctest: +SKIP
"""

from fusionrec.bench.datasets import dataset_or_skip, dataset_sha256
from fusionrec.bench.measurement import PeakMemory, measure
from fusionrec.bench.provenance import git_state, machine, shell_command
from fusionrec.bench.ranking import matmul_peak_gflops
from fusionrec.bench.rows import RESULTS_DIR, append_row, read_rows, results_file

__all__ = ["RESULTS_DIR", "PeakMemory", "append_row", "dataset_or_skip", "dataset_sha256", "git_state", "machine",
           "matmul_peak_gflops", "measure", "read_rows", "results_file", "shell_command"]
