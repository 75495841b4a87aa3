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
