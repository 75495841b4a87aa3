"""Evaluation under torch.distributed counts every user (and every rating) exactly once.

RecBole's DDP evaluation gives wrong metrics (RecBole#1872); ours must equal the single-process
numbers exactly. Two gloo processes on the CPU rank a test set whose users do not divide evenly.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch.multiprocessing as mp

from fusionrec.data.schema import Dataset
from fusionrec.data.splits import random_split
from fusionrec.evaluation import evaluate, evaluate_ratings
from fusionrec.evaluation.evaluate import merge_shards
from fusionrec.models import Recommender
from fusionrec.models.itemknn import ItemKNN, ItemKNNConfig
from fusionrec.models.mf import BiasedMF, BiasedMFConfig
from tests.conftest import tiny_interactions

WORLD = 2


def _rank_main(rank: int, tmp: str, test: Dataset) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp}/store", rank=rank, world_size=WORLD)
    try:
        out = {}
        for name in ("knn", "mf"):
            model = Recommender.load(Path(tmp) / name)
            out[name] = evaluate(model, test, (5, 10), distributed=True).metrics
        out["ratings"] = evaluate_ratings(Recommender.load(Path(tmp) / "mf"), test, distributed=True)
        (Path(tmp) / f"rank{rank}.json").write_text(json.dumps(out))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(sys.platform == "win32", reason="gloo file store")
def test_distributed_evaluation_equals_single_process(tmp_path: Path) -> None:
    data = Dataset.from_frames(tiny_interactions(n_users=40, n_items=30, per_user=8), name="t")
    split = random_split(data, test_frac=0.25, seed=0)
    models = {"knn": ItemKNN(ItemKNNConfig(neighbors=10)).fit(split.train),
              "mf": BiasedMF(BiasedMFConfig(factors=4, epochs=3)).fit(split.train)}
    for name, m in models.items():
        m.save(tmp_path / name)
    test = split.test
    mp.start_processes(_rank_main, args=(str(tmp_path), test), nprocs=WORLD, start_method="spawn")
    n_users = len(np.unique(test.interactions["user"]))
    assert n_users % WORLD  # the shards are uneven
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    for name in ("knn", "mf"):
        single = evaluate(Recommender.load(tmp_path / name), test, (5, 10)).metrics
        for res in results:  # every rank gets the same, exact, single-process numbers
            assert res[name] == single
        assert single["users"] == n_users
    single_r = evaluate_ratings(Recommender.load(tmp_path / "mf"), test)
    assert all(res["ratings"] == single_r for res in results)


def test_merge_shards_refuses_a_user_counted_twice_or_missed() -> None:
    keys, vals = merge_shards([(np.array([0, 2]), np.array([1.0, 3.0])), (np.array([1]), np.array([2.0]))],
                              np.arange(3))
    assert sorted(keys.tolist()) == [0, 1, 2] and len(vals) == 3
    with pytest.raises(RuntimeError, match="exactly once|expected"):
        merge_shards([(np.array([0, 1]), np.zeros(2)), (np.array([1]), np.zeros(1))], np.arange(3))
    with pytest.raises(RuntimeError):
        merge_shards([(np.array([0]), np.zeros(1)), (np.array([1]), np.zeros(1))], np.arange(3))
