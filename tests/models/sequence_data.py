"""Toy sequential data shared by the sequence-model tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fusionrec.data.schema import Dataset


def successor_data(n_users: int = 60, n_items: int = 12, length: int = 10, seed: int = 0) -> Dataset:
    """Every user walks the items in a ring: item ``i`` is always followed by item ``i + 1 (mod n_items)``.

    Users start at random items; raw ids are ``u<k>`` and ``i<k>`` and the dense item index of ``i<k>``
    is ``k``, so "the next item" is ``(last + 1) % n_items`` in dense indices too.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        start = int(rng.integers(n_items))
        rows += [(f"u{u}", f"i{(start + t) % n_items}", t) for t in range(length)]
    df = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    items = pd.DataFrame({"item": [f"i{i}" for i in range(n_items)]})
    data = Dataset.from_frames(df, items=items, name="successor")
    assert data.item_ids.raw(np.arange(n_items)).tolist() == [f"i{i}" for i in range(n_items)]
    return data


def last_items(data: Dataset) -> np.ndarray:
    """(n_users,) each user's newest item (dense index)."""
    inter = data.interactions.sort_values(["user", "timestamp"])
    return inter.groupby("user")["item"].last().to_numpy()
