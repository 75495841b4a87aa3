"""The ``explain`` suite (P4): how many recommendations ``fusionrec explain`` can back with graph evidence.

``coverage``: lastfm-2k, random leave-one-out split (the seed); the model (``social`` or ``kg``) is
fitted once on the train part with its default settings (``kg``: the valid part early-stops it, as
``fusionrec train --valid-file`` does). Every user with training history gets a top-``k`` list from
their training history (seen items excluded), and each recommended item counts as explained when it
has a KG path from the user's history (``explain_paths``; on lastfm-2k the KG is the artists' tags,
built by ``attribute_triples``) or social evidence (``explain_friends``: a friend listens to it).
This is :func:`fusionrec.graph.explain.evidence_coverage`, the evidence ``fusionrec explain`` prints.
``users`` explains a random sample of that many users (the seed) instead of all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

DATASET = "lastfm-2k"
MODELS = ("social", "kg")


def coverage(dataset: str, data_dir: str | Path | None, model_name: str, *, k: int = 10, n_users: int | None = None,
             threads: int = 1, sets: dict[str, Any] | None = None, seed: int = 0) -> dict[str, Any]:
    """The metrics of one row: shares of the top-``k`` items with KG, social or any evidence."""
    from fusionrec.data import load
    from fusionrec.data.splits import random_leave_one_out
    from fusionrec.graph.explain import evidence_coverage
    from fusionrec.jobs import build_model
    from fusionrec.run import Stopwatch

    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    split = random_leave_one_out(load(dataset, data_dir), seed=seed)
    settings: dict[str, Any] = {"seed": seed, **({"threads": threads} if model_name == "kg" else {}), **(sets or {})}
    with Stopwatch() as ft:
        model = build_model(model_name, settings).fit(split.train, split.valid if model_name == "kg" else None)
    users = np.flatnonzero(np.diff(model.train_matrix_.indptr) > 0)
    sample = "all users with training history"
    if n_users is not None and n_users < len(users):
        users = np.sort(np.random.default_rng(seed).choice(users, n_users, replace=False))
        sample = f"{n_users} random users (seed {seed})"
    res = evidence_coverage(model, users, k)
    triples = getattr(model, "triples_", None)
    friends = getattr(model, "friends_", None)
    return {"model": model_name, "k": k, "settings": sets or {},
            "protocol": f"random-loo seed {seed}, train history, top-{k} of {sample}",
            "coverage": res["coverage"], "kg": res["kg"], "social": res["social"],
            "users_all_covered": res["users_all_covered"], "users": int(res["users"]), "items": int(res["items"]),
            "explain_seconds": round(res["seconds"], 2), "train_seconds": round(ft.seconds, 2),
            "best_epoch": getattr(model, "best_epoch_", None),
            "graph": {"triples": len(triples) if triples is not None else 0,
                      "friend_edges": int(friends.nnz) // 2 if friends is not None else 0}}
