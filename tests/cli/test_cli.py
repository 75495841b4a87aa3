"""The CLI end to end on a small dataset directory: the exact command forms other tools script."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from fusionrec.cli import app
from fusionrec.cli.common import normalise_argv
from fusionrec.data import Dataset
from fusionrec.data import splits as S
from fusionrec.data.io import write_directory
from tests.conftest import tiny_interactions

runner = CliRunner()


def cli(*args: str):
    return runner.invoke(app, normalise_argv([str(a) for a in args]), catch_exceptions=False)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    raw = tiny_interactions(n_users=40, n_items=50, per_user=10)
    items = pd.DataFrame({"item": [f"i{i}" for i in range(55)], "title": [f"film number {i}" for i in range(55)]})
    ds = Dataset.from_frames(raw, items=items, name="tiny")
    write_directory(ds, tmp_path / "data")
    S.write_split(S.leave_last_out(ds), tmp_path / "split")
    return tmp_path


def _recs(path: Path) -> dict[str, list[str]]:
    out = {}
    for line in path.read_text().splitlines():
        u, _, items = line.partition("\t")
        out[u] = items.split(",") if items else []
    return out


@pytest.mark.parametrize("model", ["pop", "ease", "als"])
def test_train_recommend_evaluate(workdir: Path, model: str, evalkit) -> None:
    w = workdir
    r = cli("train", "--dataset", w / "data", "--train-file", w / "split/train.tsv", "--valid-file",
            w / "split/valid.tsv", "--model", model, "--out", w / "run")
    assert r.exit_code == 0, r.output
    assert (w / "run/model/model.safetensors").exists() and (w / "run/config.toml").exists()
    r = cli("recommend", "--run", w / "run", "--users", "all", "--history", w / "split/valid.tsv", "--k", "10",
            "--out", w / "recs.tsv")
    assert r.exit_code == 0, r.output
    recs = _recs(w / "recs.tsv")
    train = pd.read_csv(w / "split/train.tsv", sep="\t", dtype=str)
    valid = pd.read_csv(w / "split/valid.tsv", sep="\t", dtype=str)
    seen = set(zip(train.user, train.item, strict=False)) | set(zip(valid.user, valid.item, strict=False))
    assert len(recs) == 40 and all(len(v) == 10 for v in recs.values())
    assert not any((u, i) in seen for u, lst in recs.items() for i in lst)
    r = cli("evaluate", "--run", w / "run", "--test-file", w / "split/test.tsv", "--history", w / "split/valid.tsv",
            "--k", "10", "20")
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert {"HR@10", "NDCG@10", "MRR@10", "HR@20"} <= set(got)
    # same recommendations through the reference scorer
    cli("recommend", "--run", w / "run", "--users", "all", "--history", w / "split/valid.tsv", "--k", "20",
        "--out", w / "recs20.tsv")
    ref = evalkit.score(str(w / "split"), evalkit.read_recs(str(w / "recs20.tsv")), ks=(10, 20))
    for name in ("HR@10", "NDCG@10", "MRR@10", "NDCG@20"):
        assert got[name] == pytest.approx(ref[name], abs=1e-4)


def test_history_changes_lists_without_retraining(workdir: Path) -> None:
    w = workdir
    cli("train", "--dataset", w / "data", "--train-file", w / "split/train.tsv", "--model", "ease", "--out", w / "run")
    (w / "users.txt").write_text("u0\n")
    cli("recommend", "--run", w / "run", "--users", w / "users.txt", "--k", "5", "--out", w / "a.tsv")
    first = _recs(w / "a.tsv")["u0"]
    (w / "hist.tsv").write_text("user\titem\ttimestamp\n" + "".join(f"u0\t{i}\t2000\n" for i in first[:3]))
    cli("recommend", "--run", w / "run", "--users", w / "users.txt", "--history", w / "hist.tsv", "--k", "5",
        "--out", w / "b.tsv")
    second = _recs(w / "b.tsv")["u0"]
    assert not set(first[:3]) & set(second)


def test_candidates_rank_unseen_items_randomly_not_by_id(workdir: Path) -> None:
    w = workdir
    cli("train", "--dataset", w / "data", "--train-file", w / "split/train.tsv", "--model", "als", "--out", w / "run",
        "--set", "factors=8", "iterations=3")
    (w / "cands.txt").write_text("".join(f"i{i}\n" for i in (50, 51, 52, 53, 54, 3)))  # 50-54 never trained
    (w / "users.txt").write_text("".join(f"u{u}\n" for u in range(40)))
    r = cli("recommend", "--run", w / "run", "--users", w / "users.txt", "--candidates", w / "cands.txt", "--k", "3",
            "--out", w / "c.tsv")
    assert r.exit_code == 0, r.output
    recs = _recs(w / "c.tsv")
    assert all(set(v) <= {"i50", "i51", "i52", "i53", "i54", "i3"} for v in recs.values())
    firsts = {v[0] for u, v in recs.items() if "i3" not in v[:1]}
    assert firsts != {"i50"}  # unseen items are not ordered by id


def test_bad_inputs_get_one_clear_error(workdir: Path) -> None:
    w = workdir
    r = cli("train", "--dataset", w / "data", "--model", "nope", "--out", w / "run")
    assert r.exit_code == 2 and "known models" in r.output and "ease" in r.output
    r = cli("train", "--dataset", "no-such-set", "--model", "pop", "--out", w / "run")
    assert r.exit_code == 2 and "ml-100k" in r.output
    r = cli("train", "--dataset", w / "data", "--model", "als", "--set", "factorz=3", "--out", w / "run")
    assert r.exit_code == 2 and "factorz" in r.output
    (w / "empty.tsv").write_text("")
    r = cli("train", "--dataset", w / "data", "--train-file", w / "empty.tsv", "--model", "pop", "--out", w / "run")
    assert r.exit_code == 2 and "empty" in r.output
    (w / "nocol.tsv").write_text("user\tthing\nu1\ti1\n")
    r = cli("train", "--dataset", w / "data", "--train-file", w / "nocol.tsv", "--model", "pop", "--out", w / "run")
    assert r.exit_code == 2 and "item" in r.output
    cli("train", "--dataset", w / "data", "--train-file", w / "split/train.tsv", "--model", "pop", "--out", w / "run")
    r = cli("recommend", "--run", w / "run", "--users", "all", "--k", "0", "--out", w / "x.tsv")
    assert r.exit_code == 2 and "--k" in r.output
    r = cli("evaluate", "--run", w / "run", "--test-file", w / "split/test.tsv", "--k", "-1")
    assert r.exit_code == 2


def test_cv_and_leaderboard(workdir: Path) -> None:
    w = workdir
    r = cli("cv", "--dataset", w / "data", "--model", "pop", "--folds", "3")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert len(res["NDCG@10"]) == 2 and res["NDCG@10"][1] >= 0
    r = cli("cv", "--dataset", w / "data", "--model", "pop", "--rolling", "2")
    assert r.exit_code == 0, r.output
    r = cli("leaderboard", "--dataset", w / "data", "--models", "pop,ease")
    assert r.exit_code == 0, r.output
    assert "ease" in r.stdout and "NDCG@10" in r.stdout


def test_train_split_cuts_heldout_side_events_unless_told_to_leak(tmp_path: Path) -> None:
    raw = tiny_interactions(n_users=20, n_items=30, per_user=6)
    side = raw.assign(kind="tag", value=[f"t{i}" for i in range(len(raw))])[["user", "item", "kind", "timestamp", "value"]]
    ds = Dataset.from_frames(raw, side_events=side, name="tagged")
    write_directory(ds, tmp_path / "data")
    r = cli("train", "--dataset", tmp_path / "data", "--split", "loo", "--model", "pop", "--out", tmp_path / "run")
    assert r.exit_code == 0, r.output
    info = json.loads((tmp_path / "run/run.json").read_text())
    dropped = info["side_events_dropped"]
    assert dropped["heldout_pairs"] == 40 and dropped["kept"] == 80 and "keep_heldout_side_events" not in info
    r = cli("train", "--dataset", tmp_path / "data", "--split", "loo", "--model", "pop", "--out", tmp_path / "leak",
            "--keep-heldout-side-events")
    assert r.exit_code == 0, r.output
    info = json.loads((tmp_path / "leak/run.json").read_text())
    assert info["keep_heldout_side_events"] is True and "side_events_dropped" not in info
    assert "LEAKAGE" in cli("train", "--help").output


def test_normalise_argv() -> None:
    assert normalise_argv(["evaluate", "--k", "10", "20", "--run", "r"]) == ["evaluate", "--k", "10", "--k", "20", "--run", "r"]
    assert normalise_argv(["--set", "a=1", "b=2"]) == ["--set", "a=1", "--set", "b=2"]
