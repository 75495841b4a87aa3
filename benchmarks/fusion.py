"""Fusion-model benchmark (P3): cold-item recall on ml-100k, scored by the reference evalkit.

The warm comparison (fusion vs sasrec on the leave-one-out split) and the ablation table run
through the CLI::

    fusionrec bench baselines --dataset ml-100k --models sasrec,fusion --out bench-out/fusion.jsonl
    fusionrec bench ablation --dataset ml-latest-small --out bench-out/ablation.jsonl

This script covers PEERS.md's cold-item protocol: ``evalkit.py split --protocol cold-item --seed 0``
holds out 20% of the items; the model trains on the rest (titles, genres, year, user profiles as
inputs), ranks only the cold items for every test user (``--candidates cold_items.txt``) and
``evalkit.py score --candidates cold`` scores the lists. A valid part for the best-epoch choice is
cut from the training file by the model's own leave-one-out (last event per user).

Example::

    python benchmarks/fusion.py cold --data-dir ../shared/datasets --bench-dir ../shared/bench
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: LightFM WARP with id + genre features on this split (PEERS.md), and the issue's bar (x 1.2)
LIGHTFM_RECALL20 = 0.2075


def run_cold(data_dir: Path, bench_dir: Path, model: str, sets: list[str], work: Path) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    from fusionrec.bench import machine
    from fusionrec.data import catalog
    from fusionrec.data.splits import from_files, leave_last_out
    from fusionrec.jobs import build_model, model_settings
    from fusionrec.run import Run, peak_rss_mb, write_recs

    split_dir = work / "ml100k-cold"
    if not (split_dir / "cold_items.txt").exists():
        subprocess.run([sys.executable, str(bench_dir / "evalkit.py"), "split", "--ratings",
                        str(data_dir / "ml-100k" / "u.data"), "--format", "ml100k", "--protocol", "cold-item",
                        "--seed", "0", "--out", str(split_dir)], check=True, capture_output=True)
    data = catalog.load("ml-100k", data_dir)
    files = from_files(data, split_dir / "train.tsv", split_dir / "test.tsv")
    inner = leave_last_out(files.train)  # valid = each user's last training event (best-epoch choice)
    train = files.train.with_interactions(pd.concat([inner.train.interactions, inner.valid.interactions]))
    model_obj = build_model(model, model_settings(model, None, sets))
    t0 = time.perf_counter()
    model_obj.fit(train, inner.test)
    train_seconds = time.perf_counter() - t0
    run = Run(model_obj, train.user_ids, train.item_ids)
    cold = [x.strip() for x in (split_dir / "cold_items.txt").read_text().split("\n") if x.strip()]
    test_users = sorted(set(files.test.user_ids.raw(np.unique(files.test.interactions["user"].to_numpy()))))
    recs = run.recommend([str(u) for u in test_users], 20, candidates=cold)
    slug = "-".join(x.replace("=", "_").replace(".", "_") for x in sets)  # runs side by side keep their own lists
    rec_path = work / (f"cold-{model}-{slug}.tsv" if slug else f"cold-{model}.tsv")
    write_recs(recs, rec_path)
    proc = subprocess.run([sys.executable, str(bench_dir / "evalkit.py"), "score", "--split", str(split_dir),
                           "--recs", str(rec_path), "--k", "10", "20", "--candidates", "cold"],
                          check=True, capture_output=True, text=True)
    scores = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"dataset": "ml-100k", "protocol": "cold-item seed 0 (evalkit)", "model": model, "settings": sets,
            **{k: v for k, v in scores.items() if isinstance(v, (int, float))},
            "bar_recall@20": round(1.2 * LIGHTFM_RECALL20, 4), "train_seconds": round(train_seconds, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1), "machine": machine(), "date": time.strftime("%Y-%m-%d")}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=["cold"])
    p.add_argument("--data-dir", default=os.environ.get("FUSIONREC_DATA", ""))
    p.add_argument("--bench-dir", default="../shared/bench", help="folder with evalkit.py")
    p.add_argument("--model", default="fusion")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--work", default="bench-out/fusion-work")
    p.add_argument("--out", default="bench-out/fusion-cold.jsonl")
    a = p.parse_args(argv)
    if not a.data_dir:
        raise SystemExit("give the datasets folder: --data-dir DIR or FUSIONREC_DATA=DIR")
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    row = run_cold(Path(a.data_dir), Path(a.bench_dir), a.model, a.set, work)
    with open(a.out, "a") as fh:
        fh.write(json.dumps(row) + "\n")
    print(json.dumps({k: v for k, v in row.items() if k not in ("machine",)}))


if __name__ == "__main__":
    main()
