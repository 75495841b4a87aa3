"""What the fusion model keeps besides its network, and the rows added after training.

Saved (safetensors arrays plus JSON metadata, no pickle): the item counts and recency, the item and
user content stores, the KG triples and the friend graph (explanations), each behaviour source's
matrix (``source.<name>.*``), the content map, and a format number: a run saved by an older fusion
model is refused with a clear error instead of being misread.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from fusionrec.errors import ConfigError
from fusionrec.models.fusion.sources.base import csr_from_state, csr_state

#: bumped when the saved layout changes
FORMAT = 2


def _json(meta: Any) -> np.ndarray:
    return np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)


def _unjson(arr: np.ndarray) -> Any:
    return json.loads(bytes(arr).decode())


def state(model: Any) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {"fusion.format": np.asarray([FORMAT], np.int64),
                                  "item_counts": model.item_counts_, "item_recency": model.item_recency_,
                                  "unordered": np.asarray([getattr(model, "unordered_", False)])}
    for side, content in (("items", model.item_content_), ("users", model.user_content_)):
        if content is not None:
            arrays, meta = content.to_state()
            out.update({f"content.{side}.{k}": v for k, v in arrays.items()})
            out[f"content.{side}.meta"] = _json(meta)
    if getattr(model, "triples_", None) is not None:
        out.update(model.triples_.to_state("graph.kg."))
    if getattr(model, "friends_", None) is not None:
        out.update(csr_state("graph.friends.", model.friends_))
    for name in ("social_rows_", "side_items_", "weight_buckets_"):
        m = getattr(model, name, None)
        if m is not None:
            out.update(csr_state(f"source.{name.rstrip('_')}.", m))
    if model.content_map_ is not None:
        arrays, meta = model.content_map_.to_state()
        out.update({f"content_map.{k}": v for k, v in arrays.items()})
        out["content_map.meta"] = _json(meta)
    return out


def load_state(model: Any, st: dict[str, np.ndarray]) -> None:
    from fusionrec.encoders import ContentFeatures
    from fusionrec.graph.triples import Triples

    if "fusion.format" not in st or int(st["fusion.format"][0]) != FORMAT:
        raise ConfigError("this fusion model was saved by an older fusionrec (another layout of its network); "
                          "train it again with this version")
    model.item_counts_, model.item_recency_ = st["item_counts"], st["item_recency"]
    model.unordered_ = bool(st["unordered"][0])
    contents: dict[str, Any] = {"items": None, "users": None}
    for side in contents:
        key = f"content.{side}.meta"
        if key in st:
            pre = f"content.{side}."
            arrays = {k[len(pre):]: v for k, v in st.items() if k.startswith(pre) and k != key}
            contents[side] = ContentFeatures.from_state(arrays, _unjson(st[key]))
    model.item_content_, model.user_content_ = contents["items"], contents["users"]
    model.triples_ = Triples.from_state(st, "graph.kg.") if "graph.kg.sizes" in st else None
    model.friends_ = csr_from_state("graph.friends.", st)
    for name in ("social_rows_", "side_items_", "weight_buckets_"):
        setattr(model, name, csr_from_state(f"source.{name.rstrip('_')}.", st))
    model.content_map_ = None
    if "content_map.meta" in st:
        from fusionrec.models.content_map import ContentMap

        model.content_map_ = ContentMap.from_state(
            {k[len("content_map."):]: v for k, v in st.items() if k.startswith("content_map.") and k != "content_map.meta"},
            _unjson(st["content_map.meta"]))


# ---------------------------------------------------------------------------------------------- cold start
@torch.no_grad()
def fit_content_map(model: Any) -> None:
    """Ridge from content to the trained warm vectors (see :mod:`fusionrec.models.content_map`)."""
    from fusionrec.models.content_map import ContentMap

    model.content_map_ = None
    c = model.config.content_map
    warm = np.flatnonzero(model.item_counts_ > 0)
    if not c.enabled or not model.network_.items.content_names or len(warm) < 10:
        return
    vectors = model.item_vectors()[0]
    users = np.flatnonzero(np.diff(model.train_matrix_.indptr) > 0)
    moment = np.zeros((vectors.shape[1],) * 2)
    for start in range(0, len(users), 512):
        batch = users[start: start + 512]
        u = model.user_states(batch, model.user_history(batch))[0].double().numpy()
        moment += u.T @ u
    model.content_map_ = ContentMap.fit(model.item_content_, vectors, warm, moment / max(len(users), 1),
                                        l2=c.l2, seed=model.config.seed, extra=tower_features(model), bins=c.bins)
    model.weights_changed()


@torch.no_grad()
def tower_features(model: Any) -> dict[str, np.ndarray]:
    """The item tower's content-only output for every item, as extra map features (``content_map.tower``)."""
    if not model.config.content_map.tower:
        return {}
    net = model.network_
    net.eval()
    return {"tower": net.items(None, torch.ones(net.items.n_items, dtype=torch.bool))[0].numpy()}


def add_items(model: Any, items: Any) -> int:
    """Append new items described by rows of an items table (the training items' columns); returns how
    many. They are scored from their content at once, without retraining; they have no node in the
    trained KG (their KG token is missing) and no trained ID."""
    from fusionrec.encoders import extend_items

    model._check_fitted()
    new = extend_items(model.item_content_, items, cache_dir=model.config.cache_dir or None)
    k = new.n
    if "kg" in model.item_content_.vectors:
        new.vectors["kg"] = np.zeros((k, model.item_content_.vectors["kg"].shape[1]), np.float32)
        new.present["kg"] = np.zeros(k, bool)
    model.item_content_ = model.item_content_.append(new)
    model.item_counts_ = np.concatenate([model.item_counts_, np.zeros(k)])
    model.item_recency_ = np.concatenate([model.item_recency_, np.ones(k)])
    model.train_matrix_ = sp.hstack([model.train_matrix_, sp.csr_matrix((model.train_matrix_.shape[0], k))]).tocsr()
    model.item_popularity_ = np.concatenate([model.item_popularity_, np.zeros(k, np.float32)])
    model.n_items_ += k
    rebuild(model)
    return k


def add_users(model: Any, users: Any) -> int:
    """Append new users' profiles (rows of a users table with the training users' columns); returns how
    many. Their dense indices follow the training users in the given order."""
    from fusionrec.encoders import user_content
    from fusionrec.encoders.content import ContentFeatures

    model._check_fitted()
    if model.user_content_ is None:
        raise ConfigError("this run was trained without user profiles; new users need only events (--history)")
    frame = users.reset_index(drop=True)
    schema = {c: k for c, k in model.user_content_.schema.items() if c in frame.columns} or dict(model.user_content_.schema)
    view = type("Profiles", (), {"n_users": len(frame), "users": frame, "user_schema": schema})()
    new: ContentFeatures = user_content(view, vocab=model.user_content_.vocab,  # type: ignore[arg-type]
                                        numeric_stats=model.user_content_.numeric_stats)
    model.user_content_ = model.user_content_.append(new)
    rebuild(model)
    return new.n


def rebuild(model: Any) -> None:
    """A network for the current rows with every learned weight kept (new items' ID rows stay untrained:
    they are unseen, so their ID is never read)."""
    old = model.network_.state_dict()
    net = model.build_network()
    fresh = net.state_dict()
    for key, v in old.items():
        if key not in fresh:
            continue
        if fresh[key].shape == v.shape:
            fresh[key] = v
        elif key.endswith("ids.emb.weight"):
            fresh[key][: v.shape[0]] = v
    net.load_state_dict(fresh)
    net.eval()
    model.network_ = net
    model.weights_changed()
