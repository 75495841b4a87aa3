"""Graph evidence for recommendations: KG paths from the user's history and friends who have the item.

Two kinds of evidence explain a recommended item ``i`` to user ``u``:

* **KG paths** ``history item -[relation]-> entity <-[relation]- i`` (or a direct triple), from
  :func:`fusionrec.graph.paths.kg_paths`, best (highest score) first;
* **social evidence** "3 of your friends listen to X", from
  :func:`fusionrec.graph.social.friends_evidence`.

:class:`GraphExplainer` gives any :class:`~fusionrec.models.base.Recommender` both methods from two
attributes: ``triples_`` (a :class:`~fusionrec.graph.triples.Triples` with ``item_entity``, or None)
and ``friends_`` (a (n_users, n_users) CSR, or None). A None attribute gives no evidence of that
kind, never an error. ``KGRecommender`` and ``SocialRecommender`` have their own ``explain_paths`` /
``explain_friends`` with the same signatures (paths weighted by the item's score contributions,
friends by listening weights); :func:`graph_evidence` uses whichever a model has.

:func:`evidence_coverage` measures how many top-k recommendations have any such evidence.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from fusionrec.errors import ConfigError
from fusionrec.graph.paths import KGPath, kg_paths
from fusionrec.graph.social import friends_evidence


class GraphExplainer:
    """Mixin: KG-path and friend explanations from ``self.triples_`` and ``self.friends_``.

    Put it before the model's base class (``class M(GraphExplainer, Recommender)``); the model sets
    ``triples_`` / ``friends_`` when fitting (or leaves them None). History items are weighted by
    :meth:`path_weights`, 1 each unless a model overrides it with each history item's contribution
    to the item's score (as ``KGRecommender`` does), so by default paths rank by the path weight of
    :func:`~fusionrec.graph.paths.kg_paths` alone (a shared rare entity first). Items or users
    outside the graphs (added after training) get no evidence.
    """

    triples_: Any = None
    friends_: Any = None

    def path_weights(self, user: int, history_items: np.ndarray, item: int) -> Mapping[int, float] | None:
        """History item -> weight of its paths to ``item``; None weighs every history item 1."""
        return None

    def explain_paths(self, user: int, items: Sequence[int] | np.ndarray, top: int = 3,
                      history: sp.csr_matrix | None = None) -> list[list[KGPath]]:
        """Per item of ``items``: up to ``top`` KG paths from the user's history, best first.

        ``history`` (1, n_items) replaces the training history. Items without a path (or outside
        the graph, or every item when the model has no ``triples_``) get ``[]``.
        """
        if top < 1:
            raise ConfigError(f"explain_paths: top must be >= 1, got {top}")
        triples = getattr(self, "triples_", None)
        items = [int(i) for i in np.asarray(items, dtype=np.int64).ravel()]
        if triples is None or triples.item_entity is None or not len(triples):
            return [[] for _ in items]
        row = self.as_history(np.array([user]), history).binary  # type: ignore[attr-defined]
        n_graph = len(triples.item_entity)
        hist = row.indices.astype(np.int64)
        hist = hist[hist < n_graph]
        out: list[list[KGPath]] = []
        for it in items:
            if not len(hist) or not 0 <= it < n_graph:
                out.append([])
                continue
            out.append(kg_paths(triples, hist, it, top, item_weights=self.path_weights(int(user), hist, it)))
        return out

    def explain_friends(self, user: int, items: Sequence[int] | np.ndarray, top: int = 3) -> list[dict[str, Any]]:
        """Social evidence, strongest first: ``{"item", "friends" (count), "top_friends", "contribution",
        "message"}`` for every item of ``items`` that a friend has in training (same rows as
        ``SocialRecommender.explain_friends``).

        ``top_friends`` are at most ``top`` dense user indices; ``contribution`` is the share of the
        user's friends who have the item (friend edge weights count). No ``friends_``: ``[]``.
        """
        if top < 1:
            raise ConfigError(f"top must be a positive integer, got {top}")
        friends = getattr(self, "friends_", None)
        train = self.train_matrix_  # type: ignore[attr-defined]
        items = np.asarray(items, dtype=np.int64).ravel()
        items = items[(items >= 0) & (items < train.shape[1])]  # items added after training: nobody has them
        if friends is None or user >= friends.shape[0] or not len(items):
            return []
        ev = friends_evidence(friends, train, int(user), items)
        total = max(1e-12, float(friends.getrow(int(user)).sum()))
        return [{"item": e.item, "friends": e.count, "top_friends": e.friends[:top].tolist(),
                 "contribution": e.contribution / total, "message": e.message()} for e in ev]


def path_row(p: KGPath) -> dict[str, Any]:
    """A path as JSON-ready data (``history_item`` is a dense item index)."""
    return {"history_item": int(p.history_item), "path": str(p), "nodes": list(p.nodes),
            "relations": list(p.relations), "score": float(p.score)}


def graph_evidence(model: Any, user: int, items: Sequence[int] | np.ndarray,
                   history: sp.csr_matrix | None = None, top: int = 3) -> list[dict[str, Any]]:
    """Per item of ``items`` (same order): ``{"paths": [...], "friends": {...} | None}``.

    ``paths`` (best first, at most ``top``): ``{"history_item" (dense), "path" (text), "nodes",
    "relations", "score"}``; ``friends``: ``{"count", "top_friends" (dense users), "contribution",
    "message"}`` or None without social evidence. Uses the model's ``explain_paths`` /
    ``explain_friends`` where it has them (a model with neither gets empty evidence).
    """
    items = [int(i) for i in np.asarray(items, dtype=np.int64).ravel()]
    if hasattr(model, "explain_paths"):
        paths = [[path_row(p) for p in ps] for ps in model.explain_paths(user, items, top=top, history=history)]
    else:
        paths = [[] for _ in items]
    social: dict[int, dict[str, Any]] = {}
    if hasattr(model, "explain_friends") and items:
        for r in model.explain_friends(user, items, top=top):
            social[int(r["item"])] = {"count": int(r["friends"]), "top_friends": [int(f) for f in r["top_friends"]],
                                      "contribution": float(r["contribution"]), "message": str(r["message"])}
    return [{"paths": ps, "friends": social.get(i)} for i, ps in zip(items, paths, strict=True)]


def evidence_coverage(model: Any, users: Sequence[int] | np.ndarray, k: int = 10, *,
                      extra_history: sp.csr_matrix | None = None, batch_size: int = 256) -> dict[str, Any]:
    """How many of the users' top-``k`` recommendations have graph evidence.

    Returns ``{"coverage"`` (share of recommended items with >= 1 KG path or social evidence),
    ``"kg"`` (with a KG path), ``"social"`` (with social evidence), ``"users"`` (with >= 1
    recommendation), ``"items"`` (recommendations counted), ``"users_all_covered"`` (share of users whose every item is covered),
    ``"seconds"`` (recommending and explaining)``}``. Users are ranked with their training history
    (plus ``extra_history``, whose rows are dense user indices), seen items excluded.
    """
    users = np.asarray(users, dtype=np.int64).ravel()
    t0 = time.perf_counter()
    n = n_kg = n_social = n_any = full = ranked = 0
    for start in range(0, len(users), batch_size):
        b = users[start:start + batch_size]
        recs, _ = model.recommend(b, k, extra_history=extra_history)
        for u, row in zip(b.tolist(), recs, strict=True):
            items = row[row >= 0]
            if not len(items):
                continue
            hist = model.history_for(np.array([u]), extra_history) if extra_history is not None else None
            ev = graph_evidence(model, u, items, hist, top=1)
            kg = np.array([bool(e["paths"]) for e in ev])
            so = np.array([e["friends"] is not None for e in ev])
            n += len(items)
            ranked += 1
            n_kg += int(kg.sum())
            n_social += int(so.sum())
            n_any += int((kg | so).sum())
            full += int((kg | so).all())
    share = (lambda x: x / n if n else 0.0)  # noqa: E731
    return {"coverage": share(n_any), "kg": share(n_kg), "social": share(n_social), "users": ranked,
            "items": n, "users_all_covered": full / ranked if ranked else 0.0,
            "seconds": time.perf_counter() - t0}


__all__ = ["GraphExplainer", "evidence_coverage", "graph_evidence", "path_row"]
