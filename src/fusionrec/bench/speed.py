"""The speed suite: a model with its defaults on a synthetic world of a given size (seconds per epoch
and NDCG@10), and how long scoring one user takes.

The world (``fusionrec.data.synthetic``, no media files) is generated in the process from its config,
which the row records in place of a data checksum. The split is leave-one-out by time; training
epochs are timed without validation (the trainer's ``seconds``), the median over the run.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
import torch


def world_config(users: int, items: int, mean_events: float, seed: int) -> dict[str, Any]:
    return {"n_users": users, "n_items": items, "mean_events": mean_events, "min_events": 3, "media": False,
            "seed": seed}


def speed(users: int, items: int, mean_events: float, seed: int, model_name: str, sets: list[str]) -> dict[str, Any]:
    """One row: ``model_name`` trained with its defaults on the world, then its test metrics."""
    from fusionrec.bench.baselines import model_sets, training_summary
    from fusionrec.data import synthetic
    from fusionrec.data.splits import leave_last_out
    from fusionrec.evaluation import evaluate
    from fusionrec.jobs import model_settings, tune
    from fusionrec.run import Stopwatch

    data = synthetic.generate(synthetic.SyntheticConfig(**world_config(users, items, mean_events, seed)))
    split = leave_last_out(data)
    settings = {"seed": seed, **model_settings(model_name, None, model_sets(model_name, sets))}
    with Stopwatch() as t:
        model, _ = tune(model_name, settings, split.train, split.valid)
    res = evaluate(model, split.test, (10, 20), extra_history=split.valid.csr("order"))
    m = res.metrics
    return {"model": model_name, "world": f"{users:,} users x {items:,} items", "events": data.n_interactions,
            "settings": settings, "NDCG@10": m["NDCG@10"], "HR@10": m["HR@10"],
            "valid_NDCG@10": evaluate(model, split.valid, (10,)).metrics["NDCG@10"],
            "train_seconds": round(t.seconds, 1), **training_summary(model), **scoring_latency(model, split)}


def scoring_latency(model: Any, split: Any, users: int = 100) -> dict[str, Any]:
    """Milliseconds to score one user against the whole catalogue, one thread (median over ``users``
    users, their training history plus their valid event); for fusion also its parts: one user-tower pass,
    and a plain matrix-vector product of the same size (the floor)."""
    from fusionrec.models.wrapper import unwrap
    from fusionrec.threads import torch_threads

    rng = np.random.default_rng(0)
    pool = np.unique(split.valid.interactions["user"].to_numpy())
    picked = rng.choice(pool, size=min(users, len(pool)), replace=False)
    extra = split.valid.csr("order")
    inner = unwrap(model)
    out: dict[str, Any] = {}
    with torch_threads(1):
        model.score(picked[:1], model.user_history(picked[:1], extra))  # warm: item vectors are computed once
        times, tower = [], []
        for u in picked:
            hist = model.user_history(np.array([u]), extra)
            t0 = time.perf_counter()
            model.score(np.array([u]), hist)
            times.append(time.perf_counter() - t0)
            if hasattr(inner, "user_states"):
                t0 = time.perf_counter()
                inner.user_states(np.array([u]), hist)
                tower.append(time.perf_counter() - t0)
        out["score_ms_per_user"] = round(1000 * statistics.median(times), 3)
        if tower:
            v = torch.from_numpy(inner.item_vectors()[0])
            q = torch.randn(1, v.shape[1])
            mv = []
            for _ in range(50):
                t0 = time.perf_counter()
                q @ v.T
                mv.append(time.perf_counter() - t0)
            out["user_tower_ms"] = round(1000 * statistics.median(tower), 3)
            out["matvec_ms"] = round(1000 * statistics.median(mv), 3)
    return out
