"""Full-ranking evaluation: every test user is ranked against the whole catalogue.

This is the one place metrics are computed; the CLI, the benchmarks and cross-validation call it.

Under ``torch.distributed`` (``distributed=True`` with an initialised process group), each rank ranks
every ``world``-th test user, the top-K lists are all-gathered, and every rank scores the union: each
user is counted exactly once and the metrics equal the single-process ones (gathering the lists rather
than per-user means keeps set metrics such as coverage exact too).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from fusionrec.data.schema import Dataset
from fusionrec.errors import ConfigError
from fusionrec.evaluation import metrics as M

if TYPE_CHECKING:
    import pandas as pd

    from fusionrec.models.base import Recommender
    from fusionrec.run import Run


@dataclass
class EvalResult:
    """Mean metrics over test users, plus the per-user values they came from."""

    metrics: dict[str, float]
    per_user: dict[str, np.ndarray] = field(repr=False)
    users: np.ndarray = field(repr=False)
    recs: np.ndarray = field(repr=False)

    def __getitem__(self, name: str) -> float:
        return self.metrics[name]


def _pair_keys(m: sp.csr_matrix | None, n_items: int) -> np.ndarray:
    if m is None or m.nnz == 0:
        return np.empty(0, dtype=np.int64)
    coo = m.tocoo()
    return np.sort(coo.row.astype(np.int64) * n_items + coo.col.astype(np.int64))


def score_recommendations(
    recs: np.ndarray,
    users: np.ndarray,
    test: Dataset,
    ks: Sequence[int],
    *,
    seen: sp.csr_matrix | None = None,
    popularity: np.ndarray | None = None,
    n_pop_users: int | None = None,
    candidates: np.ndarray | None = None,
) -> EvalResult:
    """Score given top-K lists against ``test``.

    Parameters
    ----------
    recs : (n, kmax) item indices, best first, -1 padded; row r belongs to ``users[r]``.
    users : (n,) dense user indices.
    test : Dataset whose interactions are the relevant items; every user in it is counted (a user
        missing from ``users`` scores zero, as in evalkit).
    ks : cut-offs.
    seen : (n_users, n_items) CSR of items the user already had (training); a recommended seen
        item is a miss.
    popularity : (n_items,) training counts, for novelty and popularity bias.
    candidates : bool mask (n_items,); non-candidate items are dropped from lists first.
    """
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] <= 0:
        raise ConfigError(f"K must be positive integers, got {list(ks)}")
    kmax = ks[-1]
    n_items = test.n_items
    inter = test.interactions
    test_users = np.unique(inter["user"].to_numpy())
    truth_keys = np.unique(inter["user"].to_numpy().astype(np.int64) * n_items + inter["item"].to_numpy())
    n_rel = np.bincount(truth_keys // n_items, minlength=test.n_users)[test_users]

    full = np.full((len(test_users), kmax), -1, dtype=np.int64)
    pos = {int(u): r for r, u in enumerate(np.asarray(users))}
    rows = np.array([pos.get(int(u), -1) for u in test_users], dtype=np.int64)
    have = rows >= 0
    if have.any():
        sub = np.asarray(recs)[rows[have]]
        if candidates is not None:  # drop non-candidates, keep order (stable compaction)
            keep = (sub >= 0) & np.asarray(candidates, dtype=bool)[np.maximum(sub, 0)]
            order = np.argsort(~keep, axis=1, kind="stable")
            sub = np.where(np.take_along_axis(keep, order, 1), np.take_along_axis(sub, order, 1), -1)
        take = min(kmax, sub.shape[1])
        full[have, :take] = sub[:, :take]

    hits = M.hit_matrix(full, truth_keys, test_users, n_items)
    seen_keys = _pair_keys(seen, n_items)
    if len(seen_keys):
        keys = test_users[:, None] * n_items + full
        hits &= ~np.isin(keys, seen_keys)
    per_user = M.ranking_metrics(hits, n_rel, ks)
    out = {name: float(v.mean()) if len(v) else 0.0 for name, v in per_user.items()}
    order = {m: i for i, m in enumerate(M.RANKING_METRICS)}
    out = dict(sorted(out.items(), key=lambda kv: (int(kv[0].split("@")[1]), order[kv[0].split("@")[0]])))
    for k in ks:
        out[f"Coverage@{k}"] = M.coverage(full, n_items, k)
        if popularity is not None:
            out[f"Novelty@{k}"] = M.novelty(full, popularity, n_pop_users or test.n_users, k)
            out[f"PopBias@{k}"] = M.popularity_bias(full, popularity, k)
    out["users"] = float(len(test_users))
    return EvalResult(out, per_user, test_users, full)


def dist_rank_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised torch.distributed group, else ``(0, 1)``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_gather(obj: object, world: int) -> list:
    import torch.distributed as dist

    parts: list = [None] * world
    dist.all_gather_object(parts, obj)
    return parts


def merge_shards(parts: Sequence[tuple[np.ndarray, np.ndarray]], expected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate every rank's ``(keys, values)``; each key of ``expected`` must come exactly once."""
    keys = np.concatenate([np.asarray(k, dtype=np.int64) for k, _ in parts])
    values = np.concatenate([np.asarray(v) for _, v in parts])
    if len(keys) != len(expected) or not np.array_equal(np.sort(keys), np.sort(np.asarray(expected, np.int64))):
        raise RuntimeError(f"distributed evaluation covered {len(np.unique(keys))} distinct of {len(expected)} "
                           f"expected keys with {len(keys)} results; every rank must evaluate the same test set")
    return keys, values


def evaluate(
    model: Recommender,
    test: Dataset,
    ks: Sequence[int] = (10, 20),
    *,
    extra_history: sp.csr_matrix | None = None,
    candidates: np.ndarray | None = None,
    progress: Callable[[int], None] | None = None,
    distributed: bool = False,
) -> EvalResult:
    """Recommend for every user of ``test`` (full ranking, seen items excluded) and score the lists.

    ``extra_history`` (n_users, n_items) adds events the model may use at inference time (e.g. the
    validation item in leave-one-out) and excludes them from the lists. With ``distributed`` and an
    initialised torch.distributed group, every rank must call this; each ranks its share of the users
    and all get the same result (see the module docstring).
    """
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] <= 0:
        raise ConfigError(f"K must be positive integers, got {list(ks)}")
    users = np.unique(test.interactions["user"].to_numpy())
    rank, world = dist_rank_world() if distributed else (0, 1)
    mine = users[rank::world]
    if len(mine):
        recs, _ = model.recommend(mine, ks[-1], extra_history=extra_history, candidates=candidates,
                                  progress=progress)
    else:
        recs = np.full((0, ks[-1]), -1, dtype=np.int64)
    if world > 1:
        users, recs = merge_shards(_all_gather((mine, recs), world), users)
    return score_recommendations(recs, users, test, ks, seen=model.train_matrix_,
                                 popularity=model.item_popularity_, n_pop_users=model.n_users_)


def evaluate_run(
    run: Run,
    test_events: pd.DataFrame,
    ks: Sequence[int] = (10, 20),
    *,
    history: pd.DataFrame | None = None,
    candidates: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
    test_source: str = "test events",
    history_source: str = "history",
) -> EvalResult:
    """Evaluate a saved run on raw-id test events: what ``fusionrec evaluate`` computes.

    ``history`` (raw user, item, [timestamp]) events are used at inference and excluded from the lists;
    users unknown to the run are added (new users ranked from their history); ``candidates`` (raw item
    ids) restricts the ranking. Full ranking otherwise; rating models also get RMSE/MAE when the test
    events carry a ``rating``. ``EvalResult.users`` are indices into ``run.user_ids`` (raw ids:
    ``run.user_ids.raw(result.users)``).
    """
    import pandas as pd

    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] <= 0:
        raise ConfigError(f"K must be positive integers, got {list(ks)}")
    if len(test_events) == 0:
        raise ConfigError(f"{test_source} has no events")
    extra = run.history_matrix(history, source=history_source)
    cand = run.candidate_mask(list(candidates) if candidates is not None else None)
    run.extend_users(test_events["user"])
    empty = pd.DataFrame({"user": [], "item": [], "timestamp": []})
    test = Dataset(empty, run.user_ids, run.item_ids)
    test = test.with_interactions(test.interactions_from_raw(test_events, source=test_source))
    users = np.unique(test.interactions["user"].to_numpy())
    model = run.model
    recs, _ = model.recommend(users, ks[-1], extra_history=extra, candidates=cand, progress=progress)
    res = score_recommendations(recs, users, test, ks, seen=model.train_matrix_, popularity=model.item_popularity_,
                                n_pop_users=model.n_users_)
    if "rating" in test.interactions.columns and hasattr(model, "predict"):
        res.metrics.update(evaluate_ratings(model, test))
    return res


def evaluate_ratings(model: Recommender, test: Dataset, *, distributed: bool = False) -> dict[str, float]:
    """RMSE and MAE of a rating model's predictions on ``test``'s (user, item, rating) rows.

    With ``distributed`` (and an initialised torch.distributed group) each rank predicts every
    ``world``-th row and the predictions are all-gathered, so every row counts once.
    """
    if "rating" not in test.interactions.columns:
        raise ConfigError("rating evaluation needs a 'rating' column in the test interactions")
    predict = getattr(model, "predict", None)
    if predict is None:
        raise ConfigError(f"model {model.name!r} does not predict ratings; use an explicit model such as 'mf'")
    inter = test.interactions
    rank, world = dist_rank_world() if distributed else (0, 1)
    rows = np.arange(len(inter))[rank::world]
    pred = np.asarray(predict(inter["user"].to_numpy()[rows], inter["item"].to_numpy()[rows]), dtype=np.float64)
    if world > 1:
        rows, pred = merge_shards(_all_gather((rows, pred), world), np.arange(len(inter)))
        pred = pred[np.argsort(rows)]
    true = inter["rating"].to_numpy()
    return {"RMSE": M.rmse(pred, true), "MAE": M.mae(pred, true), "ratings": float(len(true))}
