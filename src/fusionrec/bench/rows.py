"""Result rows: one JSON object a line in ``benchmarks/results/<suite>.jsonl``, appended atomically.

A row is appended with one ``write`` on a file opened for appending, then flushed and fsynced,
under an exclusive lock: a finished row is on disk before the next starts, and a crash can at
worst leave the *last* line torn. Such a torn tail (a line without its newline) is dropped with a
warning by the next append and skipped by :func:`read_rows`, so earlier lines are never damaged.

Examples
--------
>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "demo.jsonl"
>>> append_row(p, {"model": "pop", "NDCG@10": 0.04})
>>> read_rows(p)[0]["model"]
'pop'
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fusionrec.errors import DataError

log = logging.getLogger(__name__)

#: where ``fusionrec bench`` writes rows, relative to the repo root
RESULTS_DIR = Path("benchmarks/results")


def results_file(suite: str, results_dir: str | Path = RESULTS_DIR) -> Path:
    """``<results_dir>/<suite>.jsonl``."""
    return Path(results_dir) / f"{suite}.jsonl"


def _clean(value: Any) -> Any:
    """JSON-safe values: numpy scalars to Python, non-finite floats to None (JSON has no NaN)."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "shape", None) == ():
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def encode_row(row: Mapping[str, Any]) -> bytes:
    """One row as one line of JSON (UTF-8, newline-terminated)."""
    return (json.dumps(_clean(row), ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def _drop_torn_tail(fd: int, path: Path) -> None:
    """Cut a last line that lacks its newline (a write a crash interrupted) back to the last newline."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    block = 1 << 16
    end = size
    while end > 0:
        start = max(0, end - block)
        chunk = os.pread(fd, end - start, start)
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            keep = start + nl + 1
            break
        end = start
    else:
        keep = 0
    log.warning("%s: dropped a torn last line of %d bytes (an append a crash interrupted)", path, size - keep)
    os.ftruncate(fd, keep)


def append_row(path: str | Path, row: Mapping[str, Any]) -> None:
    """Append ``row`` as one JSON line to ``path`` (created with its folder): write, flush, fsync."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = encode_row(row)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _drop_torn_tail(fd, path)
        written = 0
        while written < len(data):
            written += os.write(fd, data[written:])
        os.fsync(fd)
    finally:
        os.close(fd)  # also releases the lock


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Every complete row of ``path`` in file order, each with ``_line`` (its 1-based line number).

    A torn last line (no newline: an interrupted append) is skipped with a warning; a malformed
    line anywhere else is an error naming the line. A missing file has no rows.
    """
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    torn = lines.pop()  # "" when the file ends with a newline
    if torn:
        log.warning("%s: skipped a torn last line (line %d, no newline)", path, len(lines) + 1)
    rows = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{n} is not a JSON object ({e}); fix or delete that line") from e
        if not isinstance(row, dict):
            raise DataError(f"{path}:{n} is not a JSON object; each line must hold one result row")
        row["_line"] = n
        rows.append(row)
    return rows
