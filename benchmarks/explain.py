"""Explanation benchmark (P4): how many recommendations ``fusionrec explain`` can back with graph evidence.

``coverage``: lastfm-2k, random leave-one-out split (seed 0); ``--model`` (``social`` or ``kg``) is
fitted once on the train part with its default settings (``kg``: the valid part early-stops it, as
``fusionrec train --valid-file`` does; torch on ``--threads`` threads). Every user with training
history gets a top-``k`` list from their training history (seen items excluded), and each
recommended item counts as explained when it has a KG path from the user's history
(``explain_paths``; on lastfm-2k the KG is the artists' tags, built by ``attribute_triples``) or
social evidence (``explain_friends``: a friend listens to it). This is
``fusionrec.graph.explain.evidence_coverage``, the evidence ``fusionrec explain`` prints.
``--users N`` explains a random sample of N users (seed 0) instead of all; ``--set key=value``
changes a model setting (e.g. the social model's tuned ``social_weight=0 friend_item_weight=0``, whose
rankings do not favour friends' items).

Each run appends a JSON line to ``bench-out/explain.jsonl`` and prints a markdown table::

    python benchmarks/explain.py coverage --data-dir ../shared/datasets --model social
    python benchmarks/explain.py coverage --data-dir ../shared/datasets --model kg --k 10
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

DATASET = "lastfm-2k"
MODELS = ("social", "kg")


def coverage(data_dir: Path, model_name: str, k: int, n_users: int | None, threads: int,
             sets: dict[str, Any] | None = None) -> dict[str, Any]:
    from fusionrec.data import catalog
    from fusionrec.data.splits import random_leave_one_out
    from fusionrec.graph.explain import evidence_coverage
    from fusionrec.jobs import build_model
    from fusionrec.run import Stopwatch

    data = catalog.load(DATASET, data_dir)
    split = random_leave_one_out(data, seed=0)
    settings: dict[str, Any] = {**({"threads": threads} if model_name == "kg" else {}), **(sets or {})}
    with Stopwatch() as ft:
        model = build_model(model_name, settings).fit(split.train, split.valid if model_name == "kg" else None)
    users = np.flatnonzero(np.diff(model.train_matrix_.indptr) > 0)
    sample = "all users with training history"
    if n_users is not None and n_users < len(users):
        users = np.sort(np.random.default_rng(0).choice(users, n_users, replace=False))
        sample = f"{n_users} random users (seed 0)"
    res = evidence_coverage(model, users, k)
    triples = getattr(model, "triples_", None)
    friends = getattr(model, "friends_", None)
    return {"bench": "explain-coverage", "dataset": DATASET, "model": model_name, "k": k, "settings": sets or {},
            "protocol": f"random-loo seed 0, train history, top-{k} of {sample}",
            "coverage": round(res["coverage"], 4), "kg": round(res["kg"], 4), "social": round(res["social"], 4),
            "users_all_covered": round(res["users_all_covered"], 4), "users": res["users"], "items": res["items"],
            "explain_s": round(res["seconds"], 2), "train_s": round(ft.seconds, 2),
            "best_epoch": getattr(model, "best_epoch_", None),
            "graph": {"triples": len(triples) if triples is not None else 0,
                      "friend_edges": int(friends.nnz) // 2 if friends is not None else 0}}


def table(rows: list[dict[str, Any]]) -> str:
    cols = ["model", "settings", "k", "coverage", "kg", "social", "users_all_covered", "users", "items", "explain_s", "train_s"]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(f"{r[c]:.1%}" if c in ("coverage", "kg", "social", "users_all_covered")
                                     else str(r[c]) for c in cols) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=["coverage"])
    p.add_argument("--data-dir", default=os.environ.get("FUSIONREC_DATA", ""))
    p.add_argument("--model", choices=MODELS, default="social")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--users", type=int, default=None, help="explain a random sample of this many users")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="a model setting instead of its default (repeatable), e.g. friend_item_weight=0")
    p.add_argument("--out", default="bench-out/explain.jsonl")
    a = p.parse_args(argv)
    from fusionrec.bench import dataset_or_skip

    dataset_or_skip(DATASET, a.data_dir)
    if a.k < 1:
        p.error(f"--k must be >= 1, got {a.k}")
    import torch

    torch.set_num_threads(a.threads)
    from fusionrec.bench import append_jsonl, machine
    from fusionrec.jobs import model_settings

    row = coverage(Path(a.data_dir), a.model, a.k, a.users, a.threads, model_settings(a.model, None, a.sets))
    append_jsonl(Path(a.out), {**row, "machine": machine(), "date": time.strftime("%Y-%m-%d")})
    print(json.dumps(row), file=sys.stderr, flush=True)
    print(table([row]))


if __name__ == "__main__":
    main()
