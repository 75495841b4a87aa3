"""A Run: the saved artifact of one training job, and raw-id inference on it.

Layout of a run directory::

    RUN/
      run.json          what was trained on what (dataset, model, config, timings, command)
      config.toml       the model's config, editable and re-usable with --config
      model/            model.safetensors + model.json (no pickle)
      users.txt         raw user ids, line n = dense index n
      items.txt         raw item ids, line n = dense index n
      metrics.json      validation metrics, when a valid set was given

Runs are written into a temporary sibling directory and renamed into place, so a crash never
leaves a half-written run and never damages the previous one.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from fusionrec import __version__
from fusionrec.atomic import atomic_write_dir, atomic_write_text
from fusionrec.data.idmap import IdMap
from fusionrec.data.schema import Dataset
from fusionrec.errors import DataError
from fusionrec.models.base import Recommender


def to_toml(d: dict[str, Any], prefix: str = "") -> str:
    """A dict of scalars (strings, bools, ints, floats), and of such dicts (TOML tables), as TOML."""
    lines = []
    for k, v in d.items():
        if isinstance(v, dict):
            continue
        if isinstance(v, bool):
            lines.append(f"{k} = {'true' if v else 'false'}")
        elif isinstance(v, (int, float)):
            lines.append(f"{k} = {v!r}")
        else:
            lines.append(f"{k} = {json.dumps(str(v))}")
    for name, table in d.items():
        if isinstance(table, dict):
            lines.append(f"\n[{prefix}{name}]\n" + to_toml(table, f"{prefix}{name}.").rstrip("\n"))
    return "\n".join(lines) + "\n"


def _read_ids(path: Path) -> IdMap:
    text = path.read_text(encoding="utf-8")
    return IdMap(text.split("\n")[:-1] if text else [])


@dataclass
class Run:
    """A fitted model with the raw-id maps it was trained under."""

    model: Recommender
    user_ids: IdMap
    item_ids: IdMap
    info: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] | None = None

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write the run directory atomically; returns its path."""

        def fill(tmp: Path) -> None:
            self.model.save(tmp / "model")
            (tmp / "users.txt").write_text("".join(f"{u}\n" for u in self.user_ids.ids), encoding="utf-8")
            (tmp / "items.txt").write_text("".join(f"{i}\n" for i in self.item_ids.ids), encoding="utf-8")
            (tmp / "config.toml").write_text(to_toml(self.model.settings()))
            info = {"fusionrec": __version__, "model": self.model.name, **self.info}
            (tmp / "run.json").write_text(json.dumps(info, indent=1, default=str))
            if self.metrics is not None:
                (tmp / "metrics.json").write_text(json.dumps(self.metrics, indent=1))

        return atomic_write_dir(Path(path), fill)

    @classmethod
    def load(cls, path: str | Path) -> Run:
        path = Path(path)
        if not (path / "run.json").exists():
            raise DataError(f"{path} is not a fusionrec run (no run.json); create one with 'fusionrec train ... --out {path}'")
        info = json.loads((path / "run.json").read_text())
        model = Recommender.load(path / "model")
        metrics = json.loads((path / "metrics.json").read_text()) if (path / "metrics.json").exists() else None
        return cls(model, _read_ids(path / "users.txt"), _read_ids(path / "items.txt"), info, metrics)

    # ------------------------------------------------------------------ raw-id inference
    def extend_users(self, raw: pd.Series | list[str] | np.ndarray) -> None:
        """Append unseen raw users (new users) to the user map."""
        self.user_ids = self.user_ids.extend(raw)

    def add_items(self, items: pd.DataFrame, source: str = "new items") -> int:
        """New items (an ``item`` column of unseen raw ids + the dataset's item columns), scored from content."""
        if not hasattr(self.model, "add_items"):
            raise DataError(f"model {self.model.name!r} does not read item content, so it cannot score new items; "
                            f"train a content model such as 'fusion'")
        raw = _new_ids(items, "item", self.item_ids, source)
        n = self.model.add_items(items.drop(columns=["item"]))
        self.item_ids = self.item_ids.extend(raw)
        return n

    def add_users(self, users: pd.DataFrame, source: str = "new users") -> int:
        """New users' profiles (a ``user`` column of unseen raw ids + the dataset's user columns)."""
        if not hasattr(self.model, "add_users"):
            raise DataError(f"model {self.model.name!r} does not read user profiles; train a 'fusion' model, "
                            f"or give new users only events (--history)")
        raw = _new_ids(users, "user", self.user_ids, source)
        profiles = getattr(self.model, "user_content_", None)
        if profiles is None:
            raise DataError("this run was trained without user profiles; give new users only events (--history)")
        if len(self.user_ids) != profiles.n:
            raise DataError("profiles must be added before other new users (events); pass --new-users first")
        n = self.model.add_users(users.drop(columns=["user"]))
        self.user_ids = self.user_ids.extend(raw)
        return n

    def history_matrix(self, events: pd.DataFrame | None, source: str = "history") -> sp.csr_matrix | None:
        """Extra events (raw user, item, [timestamp]) as a (n_users, n_items) CSR; new users are added.

        Values order the events (1 = oldest; see ``Dataset.csr("order")``) for sequence models; other
        models read it as binary.
        """
        if events is None or len(events) == 0:
            return None
        self.extend_users(events["user"])
        u = self.user_ids.index(events["user"], what="user", source=source)
        i = self.item_ids.index(events["item"], what="item", source=source)
        ts = (pd.to_numeric(events["timestamp"]).to_numpy(np.int64) if "timestamp" in events.columns
              else np.zeros(len(u), dtype=np.int64))
        df = pd.DataFrame({"user": u, "item": i, "timestamp": ts})
        return Dataset(df, self.user_ids, self.item_ids).csr("order")  # values order the events

    def candidate_mask(self, raw_items: list[str] | None, source: str = "candidates") -> np.ndarray | None:
        if raw_items is None:
            return None
        if len(raw_items) == 0:
            raise DataError(f"{source} is empty: give one item id per line")
        mask = np.zeros(len(self.item_ids), dtype=bool)
        mask[self.item_ids.index(raw_items, what="item", source=source)] = True
        return mask

    def recommend(
        self,
        users: list[str] | np.ndarray,
        k: int,
        *,
        history: pd.DataFrame | None = None,
        candidates: list[str] | None = None,
        progress: Any = None,
    ) -> dict[str, list[str]]:
        """Raw user id -> ranked raw item ids (best first; never a seen item)."""
        extra = self.history_matrix(history)
        mask = self.candidate_mask(candidates)
        self.extend_users(users)
        idx = self.user_ids.index(users, what="user", source="users")
        items, _ = self.model.recommend(idx, k, extra_history=extra, candidates=mask, progress=progress)
        out: dict[str, list[str]] = {}
        for u, row in zip(np.asarray(users, dtype=object), items, strict=True):
            out[str(u)] = [str(x) for x in self.item_ids.raw(row[row >= 0])]
        return out


def write_recs(recs: dict[str, list[str]], path: str | Path) -> None:
    """``user<TAB>item1,item2,...`` lines, written atomically."""
    atomic_write_text(Path(path), "".join(f"{u}\t{','.join(items)}\n" for u, items in recs.items()))


class Stopwatch:
    """Wall time and peak resident memory of a block (``with Stopwatch() as t: ...; t.seconds``)."""

    def __enter__(self) -> Stopwatch:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _new_ids(rows: pd.DataFrame, column: str, ids: Any, source: str) -> pd.Series:
    """The raw ids in ``rows[column]``, checked to be present, new to ``ids`` and listed once."""
    if column not in rows.columns:
        raise DataError(f"{source} needs a '{column}' column with the new {column}s' ids; has {list(rows.columns)}")
    raw = rows[column].astype(str)
    known = [x for x in raw if x in ids]
    if known:
        raise DataError(f"{source}: {column}(s) {known[:5]} are already in the run; list only new {column}s")
    if raw.duplicated().any():
        raise DataError(f"{source}: {column} {raw[raw.duplicated()].iloc[0]!r} is listed twice")
    return raw
