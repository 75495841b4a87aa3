"""The cold-item suite: items never seen in training, ranked from their content (PEERS.md's protocol).

``evalkit.py split --protocol cold-item --seed S`` holds out 20% of ml-100k's items with all their
events (test); the model trains on the rest and ranks, for every test user, only the cold items;
``evalkit.py score --candidates cold`` scores the lists. Every cold-start choice is made on a
validation part of its own (:func:`fusionrec.data.splits.hold_out_items`: another 10% of the training
items, disjoint from the test's cold items, with all their events):

1. **choose**: the network trains on the training part minus the valid cold items; each setting of
   the content map (the tower's content output as features or not, numeric bins, ridge strength) is
   fit on the trained network and scored by Recall@20 of the valid cold items, ranked among
   themselves for their users. The best setting is kept.
2. **test**: the network trains on the whole training part with the chosen setting, and ranks the
   test cold items.

In both, each user's last training event picks the best epoch (it is held out of that training).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: LightFM WARP with id + genre features on evalkit's cold split, seed 0 (PEERS.md), and the bar (x 1.2)
LIGHTFM_RECALL20 = 0.2075
#: the content-map settings tried on the valid cold items
GRID = {"tower": (False, True), "bins": (0, 8, 16, 32), "l2": (0.0, 1.0, 10.0, 100.0)}


def evalkit_split(bench_dir: Path, data_dir: Path, seed: int, work: Path) -> Path:
    """evalkit's cold-item split of ml-100k (train.tsv, test.tsv, cold_items.txt) in ``work``."""
    out = work / f"ml100k-cold-seed{seed}"
    if not (out / "cold_items.txt").exists():
        subprocess.run([sys.executable, str(bench_dir / "evalkit.py"), "split", "--ratings",
                        str(data_dir / "ml-100k" / "u.data"), "--format", "ml100k", "--protocol", "cold-item",
                        "--seed", str(seed), "--out", str(out)], check=True, capture_output=True)
    return out


def _train_with_last_as_valid(model_name: str, settings: dict[str, Any], train: Any) -> Any:
    """Fit on ``train`` minus each user's last event, which picks the best epoch."""
    from fusionrec.data.splits import leave_last_out
    from fusionrec.jobs import build_model

    inner = leave_last_out(train)
    fit_on = train.with_interactions(pd.concat([inner.train.interactions, inner.valid.interactions]))
    return build_model(model_name, settings).fit(fit_on, inner.test)


def _cold_recall(model: Any, part: Any, items: np.ndarray, k: int = 20) -> float:
    from fusionrec.evaluation import evaluate

    mask = np.zeros(part.n_items, dtype=bool)
    mask[items] = True
    return evaluate(model, part, (k,), candidates=mask).metrics[f"Recall@{k}"]


def _with_map(model: Any, **changes: Any) -> None:
    """Refit ``model``'s content map with ``changes`` to its settings (the network stays as trained)."""
    from fusionrec.models.wrapper import unwrap

    inner = unwrap(model)
    inner.config = dataclasses.replace(inner.config, content_map=dataclasses.replace(inner.config.content_map,
                                                                                      **changes))
    inner._fit_content_map()


def cold(data_dir: Path, bench_dir: Path, seed: int, sets: list[str], work: Path, model_name: str = "fusion",
         progress: Any = None) -> dict[str, Any]:
    """One row: the setting chosen on the valid cold items, then test Recall@20 etc. by evalkit."""
    from fusionrec.data import catalog
    from fusionrec.data.splits import from_files, hold_out_items
    from fusionrec.jobs import model_settings
    from fusionrec.run import Run, Stopwatch, write_recs

    say = progress or (lambda msg: None)
    data_dir, bench_dir, work = Path(data_dir), Path(bench_dir), Path(work)
    split_dir = evalkit_split(bench_dir, data_dir, seed, work)
    data = catalog.load("ml-100k", data_dir)
    files = from_files(data, split_dir / "train.tsv", split_dir / "test.tsv", cold_items=split_dir / "cold_items.txt")
    settings = {"seed": seed, **model_settings(model_name, None, sets)}

    inner = hold_out_items(files.train, frac=0.1, seed=seed)
    say(f"choose: training on {inner.train.n_interactions:,} events ({len(inner.valid_cold_items)} valid cold items held out)")
    with Stopwatch() as t_choose:
        chooser = _train_with_last_as_valid(model_name, settings, inner.train)
        tried = []
        for tower, bins, l2 in itertools.product(*GRID.values()):
            _with_map(chooser, tower=tower, bins=bins, l2=l2)
            tried.append({"tower": tower, "bins": bins, "l2": l2,
                          "valid_recall@20": _cold_recall(chooser, inner.valid, inner.valid_cold_items)})
    best = max(tried, key=lambda r: r["valid_recall@20"])
    chosen = {k: best[k] for k in GRID}
    say(f"chosen on the valid cold items: {chosen} (Recall@20 {best['valid_recall@20']:.4f})")
    with Stopwatch() as t_train:
        model = _train_with_last_as_valid(model_name, settings, files.train)
        _with_map(model, **chosen)
    run = Run(model, files.train.user_ids, files.train.item_ids)
    cold_raw = [x for x in (split_dir / "cold_items.txt").read_text().split() if x]
    test_users = sorted(set(files.test.user_ids.raw(np.unique(files.test.interactions["user"].to_numpy()))))
    recs = run.recommend([str(u) for u in test_users], 20, candidates=cold_raw)
    rec_path = work / f"cold-{model_name}-seed{seed}.tsv"
    write_recs(recs, rec_path)
    proc = subprocess.run([sys.executable, str(bench_dir / "evalkit.py"), "score", "--split", str(split_dir),
                           "--recs", str(rec_path), "--k", "10", "20", "--candidates", "cold"],
                          check=True, capture_output=True, text=True)
    scores = json.loads(proc.stdout.strip().splitlines()[-1])
    default_map = dataclasses.asdict(type(model.config.content_map)())
    return {"model": model_name, "protocol": f"evalkit cold-item seed {seed}", "settings": sets,
            **{k: v for k, v in scores.items() if isinstance(v, (int, float))},
            "chosen_on_valid": chosen, "valid_recall@20": best["valid_recall@20"], "grid": tried,
            "default_content_map": {k: default_map[k] for k in GRID},
            "valid_cold_items": int(len(inner.valid_cold_items)), "test_cold_items": len(cold_raw),
            "bar_recall@20": round(1.2 * LIGHTFM_RECALL20, 4), "choose_seconds": round(t_choose.seconds, 1),
            "train_seconds": round(t_train.seconds, 1)}
