"""The ``kg`` suite (P4): KG link prediction, and the ``kg`` recommender, on kg-lastfm.

``linkpred``: TransE (with RotatE's self-adversarial loss, and ``transe-margin`` with Bordes et
al.'s margin loss) and RotatE, 64 dimensions, 50 epochs, on the dataset's triples (items mapped to
their entities), split 80/10/10 with the seed (held-out triples whose entities would be unseen in
train stay in train); filtered MRR and Hits@1/3/10 on the test part (head and tail queries), plus
the valid MRR.

``rec``: ``kg`` vs ``bpr`` vs ``pop`` (and ``kg-nokg``: ``kg`` without its KG, the ablation), random
leave-one-out by user with the seed, full ranking, the ``baselines`` protocol: settings tuned on the
valid part (each model's ``search_space``, NDCG@10; ``kg`` also early-stops on valid), test users get
their valid event as history at inference. For ``kg`` it also times KG-path explanations of the top 20
of every test user.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from fusionrec.bench.baselines import model_sets

DATASET = "kg-lastfm"
LINKPRED_MODELS = ("transe", "transe-margin", "rotate")
REC_MODELS = ("pop", "bpr", "kg", "kg-nokg")


def linkpred(dataset: str, data_dir: str | Path | None, name: str, *, epochs: int = 50, dim: int = 64,
             seed: int = 0) -> dict[str, Any]:
    """Train the KG embedding ``name`` (``transe``, ``transe-margin``, ``rotate``) and score link prediction."""
    from fusionrec.data import load
    from fusionrec.graph.kge import KGEConfig, KGEmbedding, link_prediction
    from fusionrec.graph.triples import split_triples, triples_from_dataset
    from fusionrec.run import Stopwatch

    triples = triples_from_dataset(load(dataset, data_dir))
    train, valid, test = split_triples(triples, 0.1, 0.1, seed=seed)
    model, _, loss = name.partition("-")
    cfg = KGEConfig(model=model, dim=dim, epochs=epochs, seed=seed)
    if loss:
        cfg = replace(cfg, loss=loss)
    with Stopwatch() as t:
        kge = KGEmbedding(cfg).fit(train)
    v = link_prediction(kge, valid, triples)
    res = link_prediction(kge, test, triples)
    return {"model": name, "split": f"80/10/10 seed {seed}: {len(train)}/{len(valid)}/{len(test)} triples",
            "filtered": True, **{k: res[k] for k in ("MRR", "Hits@1", "Hits@3", "Hits@10")},
            "valid_MRR": v["MRR"], "train_seconds": round(t.seconds, 2),
            "settings": {k: getattr(cfg, k) for k in ("dim", "epochs", "margin", "negatives", "lr", "loss",
                                                      "adversarial_temperature", "batch_size", "seed")}}


def _explain_top20(model: Any, split: Any) -> dict[str, Any]:
    import numpy as np

    users = np.unique(split.test.interactions["user"].to_numpy())
    recs, _ = model.recommend(users, 20, extra_history=split.valid.csr("order"))
    t0 = time.perf_counter()
    explained = 0
    for u, items in zip(users, recs, strict=True):
        for ps in model.explain_paths(int(u), items.tolist(), top=3):
            explained += bool(ps)
    return {"explain_seconds": round(time.perf_counter() - t0, 2), "explained_share": explained / recs.size,
            "explain": f"{len(users)} users x 20 items: {explained / recs.size:.1%} with a KG path"}


def rec(dataset: str, data_dir: str | Path | None, variant: str, sets: list[str], *, seed: int = 0) -> dict[str, Any]:
    """Tune ``variant`` (a model name, or ``kg-nokg``) on valid and score the test users."""
    from fusionrec.data import load
    from fusionrec.data.splits import random_leave_one_out
    from fusionrec.evaluation import evaluate
    from fusionrec.jobs import model_settings, tune
    from fusionrec.run import Stopwatch

    data = load(dataset, data_dir)
    split = random_leave_one_out(data, seed=seed)
    if split.valid is None:
        raise ValueError(f"{dataset}: the random leave-one-out split has no valid part to tune on")
    name = "kg" if variant == "kg-nokg" else variant
    fixed = {"seed": seed, **({"use_kg": False} if variant == "kg-nokg" else {}),
             **model_settings(name, None, model_sets(name, sets))}
    with Stopwatch() as tt:
        model, trials = tune(name, fixed, split.train, split.valid)
    chosen = {k: getattr(model.config, k) for k in (trials[0]["settings"] if trials else {})}
    fit_s = next(tr["seconds"] for tr in trials if tr["settings"] == chosen)
    res = evaluate(model, split.test, (10, 20), extra_history=split.valid.csr("order")).metrics
    row = {"model": variant, "settings": {**fixed, **chosen},
           "protocol": f"random-loo seed {seed} + valid-history, full ranking", "trials": len(trials),
           "NDCG@10": res["NDCG@10"], "HR@10": res["HR@10"], "NDCG@20": res["NDCG@20"], "HR@20": res["HR@20"],
           "valid_NDCG@10": max(tr["NDCG@10"] for tr in trials) if len(trials) > 1 else None,
           "train_seconds": round(fit_s, 2), "tune_seconds": round(tt.seconds, 2), "users": int(res["users"])}
    if variant == "kg":
        row["best_epoch"] = getattr(model, "best_epoch_", None)
        row.update(_explain_top20(model, split))
    return row
