"""pretrain -> train --init -> recommend --new-items/--new-users -> explain, on a small synthetic world."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from fusionrec.data import splits as S
from fusionrec.data.io import load_directory
from fusionrec.data.synthetic import SyntheticConfig, write
from tests.cli.test_cli import _recs, cli

SETTINGS = ["hidden=16", "user.inner=32", "user.layers=1", "user.heads=1", "user.max_len=10", "epochs=2",
            "batch_size=32", "warmup_steps=0", "threads=1", "text.encoder=hashed", "image.size=8", "item.inner=16"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fusion-cli")
    write(SyntheticConfig(n_users=60, n_items=40, mean_events=8, media=True, image_size=8, audio_seconds=0.1),
          root / "data")
    data = load_directory(root / "data")
    split = S.cold_item_split(data, frac=0.2, seed=0)
    S.write_split(split, root / "split")
    items = pd.read_csv(root / "data/items.tsv", sep="\t", dtype=str)
    cold = set((root / "split/cold_items.txt").read_text().split())
    new = items[items["item"].isin(cold)].head(3).copy()
    new["item"] = [f"new-{i}" for i in range(len(new))]
    for col in ("image", "audio"):  # paths relative to the new file's folder
        new[col] = ["../data/" + p for p in new[col]]
    (root / "extra").mkdir()
    new.to_csv(root / "extra/new_items.tsv", sep="\t", index=False)
    pd.DataFrame({"user": ["newbie"], "age": [30], "region": ["coast"]}).to_csv(root / "extra/new_users.tsv", sep="\t",
                                                                                index=False)
    return root


def test_pretrain_then_fine_tune_from_it(world: Path) -> None:
    sets = [x for s in SETTINGS for x in ("--set", s)]
    r = cli("pretrain", "--dataset", world / "data", "--train-file", world / "split/train.tsv", "--out", world / "pre",
            *sets, "--set", "pretrain.epochs=3")
    assert r.exit_code == 0, r.output
    info = json.loads((world / "pre/run.json").read_text())
    assert info["stage"] == "pretrain" and len(info["pretrain_log"]) == 3
    r = cli("train", "--dataset", world / "data", "--train-file", world / "split/train.tsv", "--model", "fusion",
            "--out", world / "run", "--init", world / "pre", *sets)
    assert r.exit_code == 0, r.output
    r = cli("train", "--dataset", world / "data", "--train-file", world / "split/train.tsv", "--model", "ease",
            "--out", world / "bad", "--init", world / "pre")
    assert r.exit_code != 0 and "--init needs a torch model" in r.output


def test_recommend_scores_new_items_and_new_users(world: Path) -> None:
    if not (world / "run").exists():
        pytest.skip("needs the run of test_pretrain_then_fine_tune_from_it")
    (world / "users.txt").write_text("newbie\n")
    (world / "cands.txt").write_text("new-0\nnew-1\nnew-2\n")
    r = cli("recommend", "--run", world / "run", "--users", world / "users.txt", "--k", "3", "--out",
            world / "recs.tsv", "--new-items", world / "extra/new_items.tsv", "--new-users",
            world / "extra/new_users.tsv", "--candidates", world / "cands.txt")
    assert r.exit_code == 0, r.output
    assert sorted(_recs(world / "recs.tsv")["newbie"]) == ["new-0", "new-1", "new-2"]
    r = cli("recommend", "--run", world / "run", "--users", world / "users.txt", "--k", "3", "--out",
            world / "recs2.tsv", "--new-items", world / "data/items.tsv")
    assert r.exit_code != 0 and "already in the run" in r.output


def test_explain_prints_gates_and_json(world: Path) -> None:
    if not (world / "run").exists():
        pytest.skip("needs the run of test_pretrain_then_fine_tune_from_it")
    user = pd.read_csv(world / "split/train.tsv", sep="\t", dtype=str)["user"].iloc[0]
    r = cli("explain", "--run", world / "run", "--user", user, "--k", "3")
    assert r.exit_code == 0, r.output
    result = json.loads(r.output[r.output.index('{"user"'):])
    assert len(result["items"]) == 3
    for row in result["items"]:
        assert abs(sum(row["gates"].values()) - 1) < 1e-4 and "id" in row["gates"]
    r = cli("train", "--dataset", world / "data", "--train-file", world / "split/train.tsv", "--model", "pop",
            "--out", world / "pop")
    r = cli("explain", "--run", world / "pop", "--user", user)
    assert r.exit_code != 0 and "has no explanations" in r.output
