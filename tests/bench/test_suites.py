"""Each ``fusionrec bench`` suite end to end on tiny data: rows with provenance land in --out."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fusionrec.bench import read_rows
from fusionrec.cli import app
from fusionrec.cli.common import normalise_argv
from fusionrec.data import Dataset
from fusionrec.data.io import write_directory
from tests.bench.fake_catalog import fake_kg_lastfm, fake_lastfm_2k
from tests.conftest import tiny_interactions

runner = CliRunner()


def bench(*args: object):
    r = runner.invoke(app, normalise_argv(["bench", *[str(a) for a in args]]), catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r


@pytest.fixture(autouse=True)
def _keep_threads(monkeypatch: pytest.MonkeyPatch):
    import torch

    monkeypatch.delenv("FUSIONREC_DATA", raising=False)
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    fake_kg_lastfm(root)
    fake_lastfm_2k(root)
    write_directory(Dataset.from_frames(tiny_interactions(n_users=30, n_items=25, per_user=8), name="tiny"),
                    root / "tiny")
    return root


def _check(rows: list[dict], bench_name: str, n: int) -> None:
    assert len(rows) == n
    for r in rows:
        assert r["bench"] == bench_name and r["dataset_sha256"] and r["machine"]["cpu"] and r["wall_seconds"] >= 0
        assert shlex.split(r["command"])[:2] == ["fusionrec", "bench"]


def test_baselines_one_process_per_model_and_seed(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "baselines.jsonl"
    bench("baselines", "--dataset", data / "tiny", "--models", "pop", "--seed", "0,1", "--out", out)
    rows = read_rows(out)
    _check(rows, "baselines", 2)
    assert [r["seed"] for r in rows] == [0, 1] and rows[0]["model"] == "pop" and 0 <= rows[0]["NDCG@10"] <= 1
    assert rows[0]["command"].endswith(f"--models pop --seed 0,1 --out {out}")
    assert rows[0]["peak_rss_mb"] > 0 and rows[0]["settings"]["seed"] == 0 and rows[1]["settings"]["seed"] == 1


def test_ranking(tmp_path: Path) -> None:
    out = tmp_path / "ranking.jsonl"
    bench("ranking", "--users", 60, "--items", 40, "--dim", 8, "--k", 5, "--history", 3, "--seed", 2, "--out", out)
    (row,) = read_rows(out)
    _check([row], "ranking", 1)
    assert row["users"] == 60 and row["seed"] == 2 and row["fraction_of_peak"] >= 0 and "NDCG@5" in row
    assert row["dataset"] == "random-factors" and len(row["dataset_sha256"]) == 64


def test_cv(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "cv.jsonl"
    bench("cv", "--dataset", data / "tiny", "--models", "mf", "--folds", 2, "--set", "mf.epochs=2", "--out", out)
    (row,) = read_rows(out)
    _check([row], "cv", 1)
    assert row["model"] == "mf" and row["RMSE"] > 0 and len(row["RMSE per fold"]) == 2 and row["folds"] == 2
    assert row["settings"] == {"seed": 0, "epochs": 2}


def test_kg_linkpred_and_rec(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "kg.jsonl"
    bench("kg", "linkpred", "--data-dir", data, "--models", "transe-margin", "--epochs", 2, "--dim", 8, "--out", out)
    bench("kg", "rec", "--data-dir", data, "--models", "pop,kg", "--set", "kg.epochs=1", "--set", "kg.factors=8",
          "--out", out)
    rows = read_rows(out)
    _check(rows[:1], "kg linkpred", 1)
    _check(rows[1:], "kg rec", 2)
    assert 0 < rows[0]["MRR"] <= 1 and rows[0]["settings"]["loss"] == "margin"
    assert f"--data-dir {data}" in rows[0]["command"] and "--epochs 2" in rows[0]["command"]
    assert rows[2]["model"] == "kg" and 0 <= rows[2]["explained_share"] <= 1 and rows[2]["settings"]["epochs"] == 1


def test_social_rec_and_new_users(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "social.jsonl"
    bench("social", "rec", "--data-dir", data, "--models", "social,ease", "--out", out)
    bench("social", "new-users", "--data-dir", data, "--out", out)
    rows = read_rows(out)
    _check(rows[:2], "social rec", 2)
    _check(rows[2:], "social new-users", 4)
    assert rows[1]["model"] == "ease" and "l2" in rows[1]["settings"]
    assert [r["model"] for r in rows[2:]] == ["social", "social (rec settings)", "friends", "pop"]
    assert len({r["wall_seconds"] for r in rows[2:]}) == 1  # one measurement, four rows


def test_explain_coverage(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "explain.jsonl"
    bench("explain", "coverage", "--data-dir", data, "--model", "social", "--k", 5, "--set", "friend_item_weight=0",
          "--out", out)
    (row,) = read_rows(out)
    _check([row], "explain coverage", 1)
    assert row["k"] == 5 and 0 <= row["coverage"] <= 1 and row["settings"] == {"friend_item_weight": 0}


@pytest.mark.parametrize("args", [["kg", "linkpred"], ["social", "new-users"], ["explain", "coverage"],
                                  ["cv"], ["baselines", "--dataset", "ml-100k"]])
def test_a_suite_without_its_dataset_skips_with_a_reason(tmp_path: Path, args: list[str]) -> None:
    out = tmp_path / "x.jsonl"
    r = runner.invoke(app, ["bench", *args, "--data-dir", str(tmp_path), "--out", str(out)])
    assert r.exit_code == 0 and "skipped:" in r.output and not out.exists()
