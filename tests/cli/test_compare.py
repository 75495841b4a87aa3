"""``fusionrec compare``: two runs (or lists of seeds) on one test file, with a paired bootstrap interval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
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


def cli(*args: object):
    r = runner.invoke(app, normalise_argv([str(a) for a in args]), catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r


def last_json(r) -> dict:  # type: ignore[no-untyped-def]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def w(tmp_path_factory: pytest.TempPathFactory) -> Path:
    w = tmp_path_factory.mktemp("compare")
    ds = Dataset.from_frames(tiny_interactions(n_users=40, n_items=50, per_user=10), name="tiny")
    write_directory(ds, w / "data")
    S.write_split(S.leave_last_out(ds), w / "split")
    train = ["--dataset", w / "data", "--train-file", w / "split/train.tsv", "--no-tune"]
    cli("train", *train, "--model", "pop", "--out", w / "pop")
    for seed in (0, 1):
        cli("train", *train, "--model", "bpr", "--set", "factors=8", "--set", f"seed={seed}", "--out", w / f"bpr{seed}")
    return w


def _evaluate(w: Path, run: str) -> dict:
    return last_json(cli("evaluate", "--run", w / run, "--test-file", w / "split/test.tsv", "--history",
                         w / "split/valid.tsv", "--k", "10"))


def test_compare_prints_a_table_and_a_json_object_with_the_interval(w: Path) -> None:
    r = cli("compare", w / "pop", w / "bpr0", "--test-file", w / "split/test.tsv", "--history", w / "split/valid.tsv",
            "--n-boot", 2000)
    got = last_json(r)
    assert "95% interval" in r.stdout and "B - A" in r.stdout
    assert got["metric"] == "NDCG@10" and got["users"] == 40 and got["n_boot"] == 2000 and got["confidence"] == 0.95
    assert got["ci_low"] <= got["difference"] <= got["ci_high"] and 0 <= got["share_below_zero"] <= 1
    # the same evaluation path as `fusionrec evaluate`
    assert got["a"]["mean"] == pytest.approx(_evaluate(w, "pop")["NDCG@10"], abs=1e-6)
    assert got["b"]["mean"] == pytest.approx(_evaluate(w, "bpr0")["NDCG@10"], abs=1e-6)
    assert got["difference"] == pytest.approx(got["b"]["mean"] - got["a"]["mean"])
    again = last_json(cli("compare", w / "pop", w / "bpr0", "--test-file", w / "split/test.tsv", "--history",
                          w / "split/valid.tsv", "--n-boot", 2000))
    assert again == got  # seeded


def test_a_comma_list_averages_each_users_metric_over_the_seeds(w: Path) -> None:
    seeds = f"{w / 'bpr0'},{w / 'bpr1'}"
    got = last_json(cli("compare", w / "pop", seeds, "--test-file", w / "split/test.tsv", "--history",
                        w / "split/valid.tsv", "--metric", "HR", "--k", "5", "--n-boot", 500))
    assert got["metric"] == "HR@5" and got["b"]["runs"] == [str(w / "bpr0"), str(w / "bpr1")]
    from fusionrec.data.io import read_interactions_file
    from fusionrec.evaluation import evaluate_run
    from fusionrec.run import Run

    test, valid = read_interactions_file(w / "split/test.tsv"), read_interactions_file(w / "split/valid.tsv")
    per_seed = []
    for name in ("bpr0", "bpr1"):
        run = Run.load(w / name)
        res = evaluate_run(run, test, (5,), history=valid)
        per_seed.append(pd.Series(res.per_user["HR@5"], index=run.user_ids.raw(res.users)).sort_index())
    mean = (per_seed[0] + per_seed[1]) / 2
    assert got["b"]["mean"] == pytest.approx(mean.mean())
    assert set(np.unique(mean.to_numpy())) <= {0.0, 0.5, 1.0}  # the average of two 0/1 values per user


def test_a_run_against_itself_differs_by_exactly_zero(w: Path) -> None:
    got = last_json(cli("compare", w / "bpr0", w / "bpr0", "--test-file", w / "split/test.tsv", "--n-boot", 200))
    assert got["difference"] == 0 and got["ci_low"] == 0 and got["ci_high"] == 0


def test_errors_are_one_clear_line(w: Path) -> None:
    r = runner.invoke(app, ["compare", str(w / "pop"), str(w / "nope"), "--test-file", str(w / "split/test.tsv")])
    assert r.exit_code == 2 and "not a fusionrec run" in r.output
    r = runner.invoke(app, ["compare", str(w / "pop"), str(w / "bpr0"), "--test-file", str(w / "split/test.tsv"),
                            "--metric", "NDGC@10"])
    assert r.exit_code == 2 and "unknown metric" in r.output
