"""measure(): a suite returns metrics; every row gets its full provenance."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fusionrec.bench import measure, read_rows
from fusionrec.bench.measurement import PROVENANCE_KEYS, PeakMemory
from tests.bench.fake_catalog import fake_kg_lastfm

FIELDS = {"suite", "bench", "dataset", "seed", "commit", "dirty", "dataset_sha256", "command", "machine",
          "wall_seconds", "peak_rss_mb", "date"}


def test_rows_carry_every_provenance_field_and_are_appended(tmp_path: Path) -> None:
    fake_kg_lastfm(tmp_path / "data")
    out = tmp_path / "kg.jsonl"
    rows = measure(lambda: {"model": "pop", "NDCG@10": 0.25}, suite="kg", bench="kg rec", dataset="kg-lastfm",
                   seed=3, data_dir=tmp_path / "data", command="fusionrec bench kg rec --seed 3", out=out)
    (row,) = rows
    assert FIELDS <= set(row) and set(PROVENANCE_KEYS) <= set(row)
    assert row["model"] == "pop" and row["NDCG@10"] == 0.25 and row["seed"] == 3 and row["dataset"] == "kg-lastfm"
    assert row["command"] == "fusionrec bench kg rec --seed 3" and len(row["dataset_sha256"]) == 64
    assert row["wall_seconds"] >= 0 and row["peak_rss_mb"] > 0 and row["date"][:2] == "20"
    assert {"cpu", "logical_cores", "torch_threads", "python", "torch", "numpy", "os"} <= set(row["machine"])
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                          cwd=Path(__file__).parent).stdout.strip()
    assert row["commit"] == (head or None) and isinstance(row["dirty"], bool)
    stored = read_rows(out)
    assert len(stored) == 1 and {k: v for k, v in stored[0].items() if k != "_line"} == row


def test_one_measurement_may_give_several_rows_sharing_its_time(tmp_path: Path) -> None:
    rows = measure(lambda: [{"model": "a"}, {"model": "b"}], suite="s", bench="s", dataset="gen", seed=None,
                   generator={"n": 1}, command=None, repo=tmp_path)
    assert [r["model"] for r in rows] == ["a", "b"] and rows[0]["wall_seconds"] == rows[1]["wall_seconds"]
    assert rows[0]["commit"] is None and rows[0]["dirty"] is None  # tmp_path is not in git


def test_a_suite_may_not_overwrite_provenance(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="provenance key"):
        measure(lambda: {"seed": 1}, suite="s", bench="s", dataset="gen", seed=0, generator={}, command=None,
                repo=tmp_path)


def test_peak_memory_is_the_measurements_own() -> None:
    import numpy as np

    with PeakMemory() as small:
        pass
    with PeakMemory() as big:
        a = np.ones(50_000_000 // 8 * 8, dtype=np.uint8)  # 50 MB touched
        a[::4096] = 2
        del a
    if big.scope == "measurement":
        assert big.mb - small.mb > 30
    assert big.mb > 0
