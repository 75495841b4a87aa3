"""The headline suites: every model with its defaults, several seeds, and paired comparisons.

``models`` trains each model as ``fusionrec train`` would with no ``--set`` (settings open in the
model's search space tuned on the valid part; torch models early-stopped on it) on the dataset's
leave-one-out split, one process per (model, seed), and scores the test users with their valid event
as history. Each row keeps the per-user NDCG@10 of its test users.

``compare`` reads those rows and, for one model against each other one, averages each user's
NDCG@10 over the seeds of each model and draws a paired bootstrap interval of the mean per-user
difference (:func:`fusionrec.evaluation.significance.paired_bootstrap`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: every model of the registry that ranks implicit feedback (mf and ratingformer predict ratings)
HEADLINE_MODELS = ("pop", "itemknn", "puresvd", "ease", "als", "bpr", "ncf", "sasrec", "gru4rec", "caser", "fusion")


def latest(rows: Sequence[dict[str, Any]], **where: Any) -> dict[tuple[str, int], dict[str, Any]]:
    """The latest row per (model, seed) among ``rows`` matching ``where``."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for r in rows:
        if all(r.get(k) == v for k, v in where.items()) and "per_user" in r:
            out[(r["model"], int(r["seed"]))] = r
    return out


def seed_mean(rows: Sequence[dict[str, Any]], metric: str = "NDCG@10") -> tuple[np.ndarray, np.ndarray]:
    """``(users, mean per-user metric over the rows)``; every row must hold the same users."""
    users = np.asarray(rows[0]["per_user"]["users"])
    values = []
    for r in rows:
        u = np.asarray(r["per_user"]["users"])
        if not np.array_equal(u, users):
            raise ValueError("rows of one model hold different test users; were they run on one split?")
        values.append(np.asarray(r["per_user"][metric], dtype=np.float64))
    return users, np.mean(values, axis=0)


def comparisons(rows: Sequence[dict[str, Any]], dataset: str, model: str = "fusion", *, suite_bench: str = "models",
                metric: str = "NDCG@10", n_boot: int = 10_000, seed: int = 0) -> list[dict[str, Any]]:
    """One row per other model: ``model`` minus it, with a paired bootstrap 95% interval over users."""
    from fusionrec.evaluation.significance import paired_bootstrap

    got = latest(rows, dataset=dataset, bench=suite_bench)
    by_model: dict[str, list[dict[str, Any]]] = {}
    for (m, _), r in sorted(got.items()):
        by_model.setdefault(m, []).append(r)
    if model not in by_model:
        raise ValueError(f"no {suite_bench} rows of {model!r} on {dataset}; run 'fusionrec bench {suite_bench}' first")
    users_a, a = seed_mean(by_model[model], metric)
    means = {m: float(np.mean([r[metric] for r in rs])) for m, rs in by_model.items()}
    others = sorted((m for m in by_model if m != model), key=lambda m: -means[m])
    out = []
    for rank, other in enumerate(others):
        users_b, b = seed_mean(by_model[other], metric)
        res = paired_bootstrap(b, a, users_a=users_b, users_b=users_a, n_boot=n_boot, seed=seed)
        out.append({"model": model, "versus": other, "metric": metric, "runner_up": rank == 0,
                    f"{model} mean": means[model], "versus mean": means[other],
                    "difference": res.mean_diff, "low": res.low, "high": res.high, "confidence": res.confidence,
                    "share_below_zero": res.share_below_zero, "users": res.n_users, "n_boot": n_boot,
                    "seeds": sorted(int(r["seed"]) for r in by_model[model]),
                    "versus seeds": sorted(int(r["seed"]) for r in by_model[other]),
                    "rows from commits": sorted({r.get("commit") or "" for r in by_model[model] + by_model[other]})})
    return out


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    from fusionrec.bench.rows import read_rows as read

    return read(Path(path))
