"""One measurement -> result rows with their provenance.

A suite returns only its metrics; :func:`measure` runs it and adds what every row records:
``suite``, ``bench``, ``dataset``, ``seed``, the code (``commit``, ``dirty``), ``dataset_sha256``,
the ``command`` that produced it, the ``machine``, ``wall_seconds``, ``peak_rss_mb`` and ``date``.

Examples
--------
>>> rows = measure(lambda: {"model": "pop", "NDCG@10": 0.04}, suite="demo", bench="demo",
...                dataset="made-up", seed=0, generator={"n": 1}, command="fusionrec bench demo")
>>> rows[0]["NDCG@10"], rows[0]["seed"], "wall_seconds" in rows[0]
(0.04, 0, True)
"""

from __future__ import annotations

import datetime as dt
import resource
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fusionrec.bench.datasets import dataset_sha256
from fusionrec.bench.provenance import git_state, machine
from fusionrec.bench.rows import append_row
from fusionrec.run import Stopwatch

Metrics = Mapping[str, Any]

#: the keys :func:`measure` adds; a suite's metrics may not set them (except to the same value)
PROVENANCE_KEYS = ("suite", "bench", "dataset", "seed", "commit", "dirty", "dataset_sha256", "command", "machine",
                   "wall_seconds", "peak_rss_mb", "peak_rss_scope", "date")


class PeakMemory:
    """Peak resident memory of this process during a block, in MB (``with PeakMemory() as m: ...; m.mb``).

    On Linux the kernel's high-water mark is reset at the start (``/proc/self/clear_refs``), so the
    figure is the block's own peak (``scope == "measurement"``); elsewhere it is the process's peak
    so far (``scope == "process"``).
    """

    def __enter__(self) -> PeakMemory:
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.scope = "measurement" if self._vm_hwm_mb() is not None else "process"
        except OSError:
            self.scope = "process"
        return self

    def __exit__(self, *exc: object) -> None:
        hwm = self._vm_hwm_mb() if self.scope == "measurement" else None
        self.mb = hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    @staticmethod
    def _vm_hwm_mb() -> float | None:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
        except (OSError, ValueError, IndexError):
            pass
        return None


def measure(
    fn: Callable[[], Metrics | Sequence[Metrics]],
    *,
    suite: str,
    bench: str,
    dataset: str,
    seed: int | None,
    command: str | None,
    data_dir: str | Path | None = None,
    generator: Mapping[str, Any] | None = None,
    out: str | Path | None = None,
    repo: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Run ``fn`` once and return its metrics as rows with their provenance; append them to ``out``.

    Parameters
    ----------
    fn : the measurement; returns one dict of metrics, or a list of them (one measurement giving
        several rows, e.g. several models scored after one shared tuning: the rows share
        ``wall_seconds`` and ``peak_rss_mb``).
    suite : the results file's name (``benchmarks/results/<suite>.jsonl``).
    bench : what was measured within the suite (e.g. ``"kg linkpred"``); report tables select on it.
    dataset, data_dir, generator : the data, checksummed by
        :func:`~fusionrec.bench.datasets.dataset_sha256` (``generator``: a config of data made in
        the measurement).
    seed : the seed of the measurement (splits, model), or None where there is none.
    command : the shell-quoted command that produced the rows, runnable from the repo root
        (:func:`~fusionrec.bench.provenance.shell_command`); the library reads no argv itself.
    out : a results file to append each row to (atomically, see :func:`~fusionrec.bench.rows.append_row`).
    repo : the git repo whose commit is recorded (default: the one holding the fusionrec sources).

    The code's state and the checksum are taken *before* the measurement runs, so a row names the
    code that ran even when files change meanwhile.
    """
    code = git_state(repo)
    checksum = dataset_sha256(dataset, data_dir, generator)
    with Stopwatch() as t, PeakMemory() as mem:
        got = fn()
    metrics = [got] if isinstance(got, Mapping) else list(got)
    head = {"suite": suite, "bench": bench, "dataset": str(dataset), "seed": seed}
    tail = {**code, "dataset_sha256": checksum, "command": command, "machine": machine(),
            "wall_seconds": round(t.seconds, 3), "peak_rss_mb": round(mem.mb, 1), "peak_rss_scope": mem.scope,
            "date": dt.datetime.now().astimezone().isoformat(timespec="seconds")}
    rows = []
    for m in metrics:
        clash = [k for k in PROVENANCE_KEYS if k in m and m[k] != {**head, **tail}[k]]
        if clash:
            raise ValueError(f"suite {suite!r} returned provenance key(s) {clash} in its metrics; rename them "
                             f"(measure() sets {list(PROVENANCE_KEYS)})")
        row = {**head, **{k: v for k, v in m.items() if k not in PROVENANCE_KEYS}, **tail}
        if out is not None:
            append_row(out, row)
        rows.append(row)
    return rows
