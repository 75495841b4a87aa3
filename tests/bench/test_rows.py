"""Result rows: appended atomically, read back in order; a crash mid-append never damages earlier lines."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from fusionrec.bench import rows as R
from fusionrec.errors import DataError


def test_rows_round_trip_in_order_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "results" / "suite.jsonl"  # the folder is created
    for i in range(3):
        R.append_row(path, {"model": f"m{i}", "NDCG@10": np.float32(0.5), "n": np.int64(i), "bad": float("nan")})
    rows = R.read_rows(path)
    assert [r["model"] for r in rows] == ["m0", "m1", "m2"] and [r["_line"] for r in rows] == [1, 2, 3]
    assert rows[2]["n"] == 2 and rows[0]["NDCG@10"] == 0.5 and rows[0]["bad"] is None  # JSON has no NaN
    assert all(line.startswith("{") for line in path.read_text().splitlines())
    assert R.read_rows(tmp_path / "missing.jsonl") == []


def test_a_crash_mid_append_keeps_earlier_lines_and_the_next_append_repairs(tmp_path: Path, monkeypatch,
                                                                            caplog) -> None:
    path = tmp_path / "suite.jsonl"
    R.append_row(path, {"model": "a"})
    R.append_row(path, {"model": "b"})
    before = path.read_bytes()

    real_write = os.write

    def crash(fd: int, data: bytes) -> int:  # half the line reaches the file, then the process dies
        real_write(fd, data[: len(data) // 2])
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(R.os, "write", crash)
    with pytest.raises(KeyboardInterrupt):
        R.append_row(path, {"model": "c", "long": "x" * 100})
    monkeypatch.setattr(R.os, "write", real_write)
    assert path.read_bytes().startswith(before) and path.read_bytes() != before  # a torn tail
    with caplog.at_level(logging.WARNING):
        assert [r["model"] for r in R.read_rows(path)] == ["a", "b"]
    assert "torn" in caplog.text
    R.append_row(path, {"model": "d"})
    assert path.read_bytes() == before + R.encode_row({"model": "d"})
    assert [r["model"] for r in R.read_rows(path)] == ["a", "b", "d"]


def test_each_row_is_flushed_and_fsynced(tmp_path: Path, monkeypatch) -> None:
    synced = []
    real = os.fsync
    monkeypatch.setattr(R.os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    R.append_row(tmp_path / "s.jsonl", {"a": 1})
    assert len(synced) == 1


def test_a_malformed_line_in_the_middle_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"a": 1}) + "\nnot json\n" + json.dumps({"a": 2}) + "\n")
    with pytest.raises(DataError, match=r"s.jsonl:2"):
        R.read_rows(path)


def test_results_file_is_the_suite_name_in_benchmarks_results() -> None:
    assert R.results_file("cv") == Path("benchmarks/results/cv.jsonl")
