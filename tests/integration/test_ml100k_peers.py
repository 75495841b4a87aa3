"""The P1 acceptance bar on real data: fusionrec vs PEERS.md on evalkit's ml-100k leave-one-out split.

Runs the exact user path (``fusionrec train`` / ``recommend --history valid.tsv``) and scores the
lists with the reference scorer ``evalkit.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fusionrec.cli import app
from fusionrec.cli.common import normalise_argv

pytestmark = pytest.mark.integration

# PEERS.md, ml-100k, loo, train+valid rows (NDCG@10)
PEER_EASE = 0.0723
PEER_ALS = 0.0757
PEER_POP = 0.0449


def cli(*args):
    r = CliRunner().invoke(app, normalise_argv([str(a) for a in args]), catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r


@pytest.fixture(scope="module")
def split(real_data_dir, evalkit, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("ml100k") / "loo"
    evalkit.main(["split", "--ratings", str(real_data_dir / "ml-100k" / "u.data"), "--format", "ml100k",
                  "--protocol", "loo", "--out", str(d)])
    return d


@pytest.mark.parametrize(("model", "bar"), [("ease", 0.98 * PEER_EASE), ("als", 0.95 * PEER_ALS),
                                             ("pop", PEER_POP - 0.002)])
def test_beats_peers(model, bar, split, real_data_dir, evalkit, tmp_path) -> None:
    run = tmp_path / "run"
    cli("train", "--dataset", "ml-100k", "--data-dir", real_data_dir, "--train-file", split / "train.tsv",
        "--valid-file", split / "valid.tsv", "--model", model, "--out", run)
    cli("recommend", "--run", run, "--users", "all", "--history", split / "valid.tsv", "--k", "20",
        "--out", tmp_path / "recs.tsv")
    ref = evalkit.score(str(split), evalkit.read_recs(str(tmp_path / "recs.tsv")), ks=(10, 20))
    assert ref["train_item_violations"] == 0 and ref["users_missing"] == 0
    assert ref["NDCG@10"] >= bar, ref
    ours = json.loads(cli("evaluate", "--run", run, "--test-file", split / "test.tsv", "--history",
                          split / "valid.tsv", "--k", "10", "20").stdout.strip().splitlines()[-1])
    for name in ("HR@10", "NDCG@10", "MRR@10", "HR@20", "NDCG@20", "MRR@20"):
        assert abs(ours[name] - ref[name]) <= 1e-4, name
