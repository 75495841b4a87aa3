"""Why the fusion model scores an item: the sources behind the item's vector and the history behind the user's.

Per recommended item: ``gates`` (the share of each source in the item vector: ID, text, image, audio,
attributes, KG), ``seen_in_training`` and ``vector`` ("item tower", or "content map" for an item
unseen in training), ``attended`` (the last layer's attention, averaged over heads, from the user's
newest position: the user tokens and the history items it read most), and ``side_event`` (the boost
of an item the user has a side event on, e.g. "you tagged this artist"). The item-item prior, when
the model is wrapped in it, adds its own ``prior`` entry (:mod:`fusionrec.models.prior`); KG paths
and friends come from :class:`~fusionrec.graph.explain.GraphExplainer`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fusionrec.models.history import History


def explain_rows(model: Any, user: int, items: np.ndarray, history: History, top: int = 3) -> list[dict[str, Any]]:
    users = np.array([user], dtype=np.int64)
    _, seq, atts, n = model.user_states(users, history, weights=True)
    _, gates, _, mapped = model._items()
    names = model.gate_names
    users_net = model.network_.users
    prefix = users_net.prefix
    length = int(n[0])
    attended: list[dict[str, Any]] = []
    if length + prefix:
        att = atts[-1][0].mean(0)[length - 1 + prefix]  # (prefix + L,) from the newest position
        for j, source in enumerate(users_net.prefix_names):
            attended.append({"item": None, "source": source, "attention": float(att[j])})
        w = att[prefix: prefix + length]
        for j in torch.argsort(w, descending=True)[:top].tolist():
            attended.append({"item": int(seq[0, j]) - 1, "source": "history", "attention": float(w[j])})
    boost = model.side_boost(users)
    out = []
    for i in np.asarray(items, dtype=np.int64):
        row: dict[str, Any] = {"item": int(i), "gates": {m: float(gates[i, k]) for k, m in enumerate(names)},
                               "attended": attended, "seen_in_training": bool(model.item_counts_[i] > 0),
                               "vector": "content map" if mapped[i] else "item tower"}
        if boost is not None and boost[0, i] > 0:
            row["side_event"] = {"boost": float(boost[0, i])}
        out.append(row)
    return out
