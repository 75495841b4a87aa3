"""Shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The real datasets: ``$FUSIONREC_DATA``, else ``<repo>/../shared/datasets``; skips when absent."""
    env = os.environ.get("FUSIONREC_DATA", "").strip()
    path = Path(env).expanduser() if env else REPO.parent / "shared" / "datasets"
    if not path.is_dir():
        pytest.skip(f"real datasets not found: set FUSIONREC_DATA or place them in {path}")
    return path


@pytest.fixture(scope="session")
def evalkit():
    """The reference scorer ``../shared/bench/evalkit.py``; skips when absent."""
    import importlib.util

    path = REPO.parent / "shared" / "bench" / "evalkit.py"
    if not path.exists():
        pytest.skip(f"reference scorer not found at {path}")
    spec = importlib.util.spec_from_file_location("evalkit", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def tiny_interactions(n_users: int = 30, n_items: int = 40, per_user: int = 8, seed: int = 0):
    """Raw-id interactions with timestamps (some ties) and ratings, in a deterministic order."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        items = rng.choice(n_items, size=per_user, replace=False)
        ts = np.sort(rng.integers(1000, 1020, size=per_user))
        for i, t in zip(items, ts, strict=True):
            rows.append((f"u{u}", f"i{i}", int(t), float(rng.integers(1, 6))))
    return pd.DataFrame(rows, columns=["user", "item", "timestamp", "rating"])


@pytest.fixture
def tiny_dataset():
    from fusionrec.data import Dataset

    return Dataset.from_frames(tiny_interactions(), name="tiny")
