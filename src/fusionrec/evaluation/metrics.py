"""Metric formulas, vectorised over users.

Ranking metrics follow ``evalkit.py`` exactly: a recommended training item is a miss, duplicates
count once, a user with no list scores zero, NDCG's ideal DCG uses ``min(k, |relevant|)`` targets
(so with one target it is 1), and every user with a test item counts in the mean.
"""

from __future__ import annotations

import numpy as np

from fusionrec.errors import UnknownNameError

RANKING_METRICS = ("HR", "Recall", "Precision", "NDCG", "MRR", "MAP")


def parse_metric(name: str) -> tuple[str, int]:
    """``"ndcg@10"`` -> ``("NDCG", 10)``; unknown names list the known ones."""
    base, _, k = name.partition("@")
    canon = {m.lower(): m for m in RANKING_METRICS}
    if base.lower() not in canon or not k.isdigit() or int(k) <= 0:
        raise UnknownNameError(f"unknown metric {name!r}; use NAME@K with NAME in {list(RANKING_METRICS)}, K >= 1")
    return canon[base.lower()], int(k)


def hit_matrix(recs: np.ndarray, truth_keys: np.ndarray, users: np.ndarray, n_items: int) -> np.ndarray:
    """Boolean (n_users, kmax): is ``recs[u, r]`` a relevant item of user ``users[u]``?

    ``truth_keys`` are sorted ``user * n_items + item`` codes of the relevant pairs; ``-1`` entries
    in ``recs`` (short lists) and repeated items never hit.
    """
    keys = users[:, None].astype(np.int64) * n_items + recs
    hits = np.isin(keys, truth_keys) & (recs >= 0)
    # duplicates count once: an item equal to an earlier one in the row is not a hit
    if recs.shape[1] > 1:
        srt = np.sort(recs, axis=1)
        if (srt[:, 1:] == srt[:, :-1]).any():
            for r in np.flatnonzero((srt[:, 1:] == srt[:, :-1]).any(axis=1)):
                _, first = np.unique(recs[r], return_index=True)
                dup = np.ones(recs.shape[1], dtype=bool)
                dup[first] = False
                hits[r, dup] = False
    return hits


def ranking_metrics(hits: np.ndarray, n_relevant: np.ndarray, ks: list[int]) -> dict[str, np.ndarray]:
    """Per-user ranking metrics at each K.

    Parameters
    ----------
    hits : (n_users, kmax) bool, from :func:`hit_matrix`.
    n_relevant : (n_users,) number of relevant (test) items per user, >= 1.
    ks : cut-offs, each <= kmax.

    Returns
    -------
    ``{"NDCG@10": (n_users,) float64, ...}`` for every metric in :data:`RANKING_METRICS`.
    """
    n_rel = np.maximum(n_relevant.astype(np.float64), 1.0)
    kmax = hits.shape[1]
    disc = 1.0 / np.log2(np.arange(2, kmax + 2))  # (kmax,)
    ideal_cum = np.cumsum(disc)
    out: dict[str, np.ndarray] = {}
    h = hits.astype(np.float64)
    cum_hits = np.cumsum(h, axis=1)  # hits within the first r+1
    prec_at = cum_hits / np.arange(1, kmax + 1)
    first = np.where(hits.any(axis=1), hits.argmax(axis=1), -1)
    for k in ks:
        if k > kmax:
            raise ValueError(f"k={k} exceeds list length {kmax}")
        nh = cum_hits[:, k - 1]
        dcg = (h[:, :k] * disc[:k]).sum(axis=1)
        idcg = ideal_cum[np.minimum(n_rel, k).astype(np.int64) - 1]
        out[f"HR@{k}"] = (nh > 0).astype(np.float64)
        out[f"Recall@{k}"] = nh / n_rel
        out[f"Precision@{k}"] = nh / k
        out[f"NDCG@{k}"] = dcg / idcg
        inside = (first >= 0) & (first < k)
        out[f"MRR@{k}"] = np.divide(1.0, first + 1.0, out=np.zeros(len(first)), where=inside)
        out[f"MAP@{k}"] = (prec_at[:, :k] * h[:, :k]).sum(axis=1) / np.minimum(n_rel, k)
    return out


def coverage(recs: np.ndarray, n_items: int, k: int) -> float:
    """Share of the catalogue that appears in at least one top-``k`` list."""
    top = recs[:, :k]
    return float(len(np.unique(top[top >= 0])) / max(1, n_items))


def novelty(recs: np.ndarray, popularity: np.ndarray, n_users: int, k: int) -> float:
    """Mean self-information ``-log2(p_i)`` of recommended items, ``p_i`` = share of users with item i."""
    top = recs[:, :k]
    top = top[top >= 0]
    if len(top) == 0:
        return 0.0
    p = np.maximum(popularity[top], 1.0) / max(1, n_users)
    return float(np.mean(-np.log2(p)))


def popularity_bias(recs: np.ndarray, popularity: np.ndarray, k: int) -> float:
    """Average recommendation popularity (ARP): mean training count of recommended items,
    divided by the mean count of all items (1.0 = as popular as an average item)."""
    top = recs[:, :k]
    top = top[top >= 0]
    mean_pop = float(popularity.mean()) if len(popularity) else 0.0
    if len(top) == 0 or mean_pop == 0:
        return 0.0
    return float(popularity[top].mean() / mean_pop)


def rmse(pred: np.ndarray, true: np.ndarray) -> float:
    """Root mean squared error of predicted ratings."""
    d = np.asarray(pred, dtype=np.float64) - np.asarray(true, dtype=np.float64)
    return float(np.sqrt(np.mean(d * d))) if len(d) else float("nan")


def mae(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean absolute error of predicted ratings."""
    d = np.asarray(pred, dtype=np.float64) - np.asarray(true, dtype=np.float64)
    return float(np.mean(np.abs(d))) if len(d) else float("nan")
