"""The flagship's suites end to end on tiny data: models (per-user values), compare, lastfm, speed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fusionrec.bench import read_rows
from fusionrec.bench.models import comparisons
from tests.bench.test_suites import _check, bench

TINY_SEQ = ["sasrec.epochs=2", "sasrec.max_len=5", "sasrec.hidden=8", "sasrec.inner=16", "sasrec.threads=1"]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FUSIONREC_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fusionrec.data import Dataset
    from fusionrec.data.io import write_directory
    from tests.bench.fake_catalog import fake_lastfm_2k
    from tests.conftest import tiny_interactions

    root = tmp_path_factory.mktemp("data")
    fake_lastfm_2k(root)
    write_directory(Dataset.from_frames(tiny_interactions(n_users=30, n_items=25, per_user=8), name="tiny"),
                    root / "tiny")
    return root


def test_models_rows_keep_per_user_values_and_compare_draws_intervals(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "models.jsonl"
    bench("models", "--dataset", data / "tiny", "--models", "pop,sasrec", "--seed", "0,1", "--out", out,
          *[x for s in TINY_SEQ for x in ("--set", s)])
    rows = read_rows(out)
    _check(rows, "models", 4)
    for r in rows:
        assert len(r["per_user"]["users"]) == len(r["per_user"]["NDCG@10"]) == r["users"]
        assert np.mean(r["per_user"]["NDCG@10"]) == pytest.approx(r["NDCG@10"], abs=1e-5)
        assert r["score_ms_per_user"] > 0
    seq = [r for r in rows if r["model"] == "sasrec"]
    assert all(r["epochs"] == 2 and r["seconds_per_epoch"] > 0 for r in seq)
    got = comparisons(rows, str(data / "tiny"), "sasrec", n_boot=500)
    assert len(got) == 1 and got[0]["versus"] == "pop" and got[0]["low"] <= got[0]["difference"] <= got[0]["high"]
    assert got[0]["seeds"] == [0, 1] and got[0]["runner_up"]


def test_lastfm_runs_baselines_on_listens_and_with_the_tags(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "lastfm.jsonl"
    bench("lastfm", "--data-dir", data, "--models", "ease,ease+tags", "--out", out, "--set", "ease.l2=10")
    rows = read_rows(out)
    _check(rows, "lastfm", 2)
    plain, tags = rows
    assert plain["model"] == "ease" and tags["model"] == "ease+tags"
    assert plain["added_pairs"] is None and tags["added_pairs"] is not None  # (the fake tags are on listened pairs)
    assert plain["per_user"]["users"] == tags["per_user"]["users"]


def test_speed_on_a_small_world(tmp_path: Path) -> None:
    out = tmp_path / "speed.jsonl"
    bench("speed", "--users", 60, "--items", 40, "--mean-events", 6, "--models", "sasrec", "--out", out,
          *[x for s in TINY_SEQ for x in ("--set", s)])
    (row,) = read_rows(out)
    _check([row], "speed", 1)
    assert row["dataset"] == "synthetic" and row["epochs"] == 2 and row["seconds_per_epoch"] > 0
    assert row["world"] == "60 users x 40 items"
