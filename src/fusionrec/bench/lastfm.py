"""The lastfm-2k suite: fusion with every source it reads, against baselines on the same inputs.

lastfm-2k has no timestamps: the random leave-one-out split by user (one random event -> test,
another -> valid; the valid event is history for the test users), full ranking. The split's training
view holds only the tag assignments on pairs that are not held out (:mod:`fusionrec.data.views`): the
user tagged the held-out artist in ~21% of test pairs, and that tag must not reach training.

``fusion`` reads the listens and the tagging (its side token and per-user boost), the artist names
and tags, the friends, and KGCN's KG when it lies beside the data. So that a comparison is fair, the
baselines run twice: on the listens, and on the listens ∪ the training view's tagged pairs
(:class:`fusionrec.models.side_history.WithSideEvents`: ``ease+tags``, ``als+tags``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: row name -> (registry model, extra settings)
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "fusion": ("fusion", []),
    "ease": ("ease", []),
    "als": ("als", []),
    "ease+tags": ("ease", ["side_events=true"]),
    "als+tags": ("als", ["side_events=true"]),
}


def lastfm(variant: str, data_dir: Path, seed: int, sets: list[str]) -> dict[str, Any]:
    """One row: ``variant`` (a key of :data:`VARIANTS`) with its defaults (settings open in its search space
    tuned on valid), its test metrics and per-user NDCG@10."""
    from fusionrec.bench.baselines import model_sets, per_user, training_summary
    from fusionrec.data import load
    from fusionrec.data.splits import random_leave_one_out
    from fusionrec.evaluation import evaluate
    from fusionrec.jobs import model_settings, tune
    from fusionrec.run import Stopwatch

    if variant not in VARIANTS:
        raise ValueError(f"unknown lastfm variant {variant!r}; known: {sorted(VARIANTS)}")
    name, extra = VARIANTS[variant]
    data = load("lastfm-2k", data_dir)
    split = random_leave_one_out(data, seed=seed)
    settings = {"seed": seed, **model_settings(name, None, [*extra, *model_sets(name, sets)])}
    with Stopwatch() as t:
        model, trials = tune(name, settings, split.train, split.valid)
    res = evaluate(model, split.test, (10, 20), extra_history=split.valid.csr("order"))
    m = res.metrics
    dropped = split.side_events_dropped
    explained = {}
    if hasattr(model, "explain_paths"):  # how many top-10 items `fusionrec explain` backs with a KG path or friends
        from fusionrec.graph.explain import evidence_coverage

        cov = evidence_coverage(model, res.users, 10, extra_history=split.valid.csr("order"))
        explained = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in cov.items()}
    return {"model": variant, "protocol": f"random-loo seed {seed} + valid history", "settings": settings,
            "NDCG@10": m["NDCG@10"], "HR@10": m["HR@10"], "NDCG@20": m["NDCG@20"], "HR@20": m["HR@20"],
            "users": int(m["users"]), "valid_NDCG@10": evaluate(model, split.valid, (10,)).metrics["NDCG@10"],
            "train_seconds": round(t.seconds, 1), "trials": len(trials),
            "side_events_dropped": dropped.total if dropped is not None else None,
            "added_pairs": getattr(model, "added_pairs_", None), **training_summary(model),
            **({"explained": explained} if explained else {}),
            "per_user": per_user(res, split)}
