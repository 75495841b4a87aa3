"""The ``social`` suite (P4) on lastfm-2k: warm users, and new users known only by their friends.

``rec``: ``social`` vs ``ease``, ``als``, ``bpr`` and ``pop`` on the random leave-one-out split (the
seed), full ranking, the ``baselines`` protocol: settings tuned on the valid part (NDCG@10), then the
test users are ranked with their valid event as extra history. EASE's l2 is tuned through the social
model with its social terms off and binary weights, which computes exactly EASE's scores by the dual
(Woodbury) form in seconds; EASE itself is then fitted once with the chosen l2 (its n_items^2 inverse
takes minutes on one core), and its test row comes from that fit.

``new-users``: 10% of the users who have friends (the seed) lose their whole history; everything else
trains; each hidden user is ranked from the social graph alone. Recall@20 / NDCG@20 of their hidden
items, against popularity and a 'friends' baseline (rank items by how many friends listen to them).
The social model's settings are chosen on another 10% of users with friends, hidden the same way
from a training set that also lacks the test users; the test run then trains on all non-test users.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.bench.baselines import model_sets

DATASET = "lastfm-2k"
REC_MODELS = ("social", "ease", "als", "bpr", "pop")

#: what ``rec`` tunes for warm users on lastfm-2k (social terms off): friends-only users are then
#: scored as ``f_u B`` (see fusionrec.models.social)
REC_SETTINGS: dict[str, Any] = {"l2": 150.0, "social_weight": 0.0, "friend_item_weight": 0.0}
#: (name, settings) of the models compared on hidden users; 'friends' counts friends per item
NEW_USER_BASELINES: dict[str, dict[str, Any]] = {
    "friends": {"l2": 200.0, "social_weight": 0.0, "friend_item_weight": 1.0, "weighting": "binary"},
}
NEW_USER_GRID = [{"l2": l2, "weighting": w, "social_weight": 1.0, "friend_item_weight": g, "friend_attention": 0.0}
                 for l2 in (50.0, 200.0, 1000.0) for w in ("binary", "log1p", "log1p-idf")
                 for g in (0.0, 0.02, 0.1, 0.5, 2.0)]


def _tune_ease_through_social(split: Any, seed: int) -> tuple[dict[str, Any], int]:
    from fusionrec.evaluation import evaluate
    from fusionrec.jobs import build_model

    grid = build_model("ease").search_space["l2"]
    best: tuple[float, float] | None = None
    for l2 in grid:
        m = build_model("social", {"l2": l2, "social_weight": 0.0, "friend_item_weight": 0.0,
                                   "weighting": "binary", "seed": seed}).fit(split.train)
        v = evaluate(m, split.valid, (10,)).metrics["NDCG@10"]
        if best is None or v > best[0]:
            best = (v, l2)
    if best is None:
        raise ValueError("EASE has an empty l2 grid to tune")
    return {"l2": best[1]}, len(grid)


def rec(dataset: str, data_dir: str | Path | None, name: str, sets: list[str], *, seed: int = 0) -> dict[str, Any]:
    """Tune ``name`` on valid, fit it once more with the chosen settings, score the test users."""
    from fusionrec.data import load
    from fusionrec.data.splits import random_leave_one_out
    from fusionrec.evaluation import evaluate
    from fusionrec.jobs import build_model, model_settings, tune
    from fusionrec.run import Stopwatch

    split = random_leave_one_out(load(dataset, data_dir), seed=seed)
    if split.valid is None:
        raise ValueError(f"{dataset}: the random leave-one-out split has no valid part to tune on")
    fixed = {"seed": seed, **model_settings(name, None, model_sets(name, sets))}
    with Stopwatch() as tt:
        if name == "ease" and set(fixed) == {"seed"}:  # exact EASE scores by the dual form; see the docstring
            settings, trials = _tune_ease_through_social(split, seed)
        else:
            model, tr = tune(name, fixed, split.train, split.valid)
            settings = {k: getattr(model.config, k) for k in getattr(model, "search_space", {})}
            trials = len(tr)
    settings = {**fixed, **settings}
    with Stopwatch() as ft:  # the chosen settings, fitted once more: the train time reported
        model = build_model(name, settings).fit(split.train, split.valid)
    valid = evaluate(model, split.valid, (10,)).metrics["NDCG@10"]
    m = evaluate(model, split.test, (10, 20), extra_history=split.valid.csr("order")).metrics
    return {"model": name, "settings": settings, "protocol": f"random-loo seed {seed} +valid-history, full ranking",
            "trials": trials, "valid_NDCG@10": valid, "NDCG@10": m["NDCG@10"], "HR@10": m["HR@10"],
            "NDCG@20": m["NDCG@20"], "HR@20": m["HR@20"], "train_seconds": round(ft.seconds, 2),
            "tune_seconds": round(tt.seconds, 2), "users": int(m["users"])}


def hide_users(data: Any, users: np.ndarray) -> tuple[Any, Any]:
    """(rest, hidden): ``data`` without / with only the interactions of ``users``."""
    inter = data.interactions
    mask = np.isin(inter["user"].to_numpy(), users)
    return (data.with_interactions(inter[~mask], name=f"{data.name}:rest"),
            data.with_interactions(inter[mask], name=f"{data.name}:hidden"))


def new_user_split(data: Any, seed: int = 0, frac: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(test users, valid users): disjoint ``frac`` shares of the users with friends and history."""
    from fusionrec.graph.social import friend_matrix

    f = friend_matrix(data)
    active = np.unique(data.interactions["user"].to_numpy())
    eligible = active[np.diff(f.indptr)[active] > 0]
    perm = np.random.default_rng(seed).permutation(eligible)
    n = int(round(frac * len(eligible)))
    return np.sort(perm[:n]), np.sort(perm[n:2 * n])


def new_users(dataset: str, data_dir: str | Path | None, *, seed: int = 0, ks: tuple[int, ...] = (10, 20),
              grid: list[dict[str, Any]] | None = None,
              on_trial: Callable[[dict[str, Any], float], None] | None = None) -> list[dict[str, Any]]:
    """One row per compared model (tuned ``social``, ``social`` with the warm settings, friends, pop)."""
    from fusionrec.data import load
    from fusionrec.evaluation import evaluate
    from fusionrec.jobs import build_model
    from fusionrec.run import Stopwatch

    data = load(dataset, data_dir)
    test_users, valid_users = new_user_split(data, seed=seed)
    rest, test = hide_users(data, test_users)
    inner, valid = hide_users(rest, valid_users)
    best: tuple[float, dict[str, Any]] | None = None
    with Stopwatch() as tt:
        for s in grid if grid is not None else NEW_USER_GRID:
            m = build_model("social", {**s, "seed": seed}).fit(inner)
            v = evaluate(m, valid, ks).metrics["NDCG@20"]
            if on_trial is not None:
                on_trial(s, v)
            if best is None or v > best[0]:
                best = (v, s)
    if best is None:
        raise ValueError("new-users: the social grid is empty")
    rows = []
    for name, settings in [("social", best[1]), ("social (rec settings)", REC_SETTINGS), *NEW_USER_BASELINES.items(),
                           ("pop", {})]:
        model_name = "pop" if name == "pop" else "social"  # 'friends' is the social model, counts only
        settings = {**settings, "seed": seed}
        with Stopwatch() as ft:
            m = build_model(model_name, settings).fit(rest)
        vm = evaluate(build_model(model_name, settings).fit(inner), valid, ks).metrics
        r = evaluate(m, test, ks).metrics
        rows.append({"model": name, "settings": settings,
                     "protocol": f"10% of users with friends hidden (seed {seed}), ranked from friends only",
                     "Recall@20": r["Recall@20"], "NDCG@20": r["NDCG@20"], "Recall@10": r["Recall@10"],
                     "NDCG@10": r["NDCG@10"], "valid_NDCG@20": vm["NDCG@20"], "train_seconds": round(ft.seconds, 2),
                     "tune_seconds": round(tt.seconds, 2) if name == "social" else 0.0,
                     "test_users": int(r["users"]), "valid_users": len(valid_users)})
    return rows
