"""Raw ids at the edges, dense indices inside."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from fusionrec.errors import DataError


class IdMap:
    """A bijection between raw string ids and dense indices ``0..n-1``.

    Raw ids are always kept as strings, so ``"007"`` and ``"7"`` stay distinct and files
    round-trip exactly.

    Examples
    --------
    >>> m = IdMap(["u1", "u7"])
    >>> m.index(["u7"]).tolist(), m.raw([0]).tolist()
    ([1], ['u1'])
    """

    def __init__(self, ids: Iterable[object]) -> None:
        arr = np.asarray([str(x) for x in ids], dtype=object)
        index = pd.Index(arr)
        if index.has_duplicates:
            dup = index[index.duplicated()][0]
            raise DataError(f"duplicate id {dup!r} in id map")
        self._ids = arr
        self._index = index

    @classmethod
    def from_values(cls, *columns: Iterable[object]) -> IdMap:
        """Ids in order of first appearance across the given columns."""
        parts = [pd.Series(np.asarray(list(c) if not hasattr(c, "__array__") else c, dtype=object)).astype(str)
                 for c in columns]
        return cls(pd.unique(pd.concat(parts, ignore_index=True)) if parts else [])

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, raw: object) -> bool:
        return str(raw) in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and len(self) == len(other) and bool(np.all(self._ids == other._ids))

    __hash__ = None  # type: ignore[assignment]

    @property
    def ids(self) -> np.ndarray:
        """Raw ids, position = dense index. Shape (n,), dtype object (str)."""
        return self._ids

    def lookup(self, raw: Sequence[object] | np.ndarray | pd.Series) -> np.ndarray:
        """Dense indices of ``raw``, with -1 where an id is unknown."""
        vals = pd.Series(raw, dtype=object).astype(str).to_numpy()
        return self._index.get_indexer(vals).astype(np.int64)

    def index(self, raw: Sequence[object] | np.ndarray | pd.Series, *, what: str = "id",
              source: str = "input") -> np.ndarray:
        """Dense indices of ``raw``; raises :class:`DataError` naming the first unknown id."""
        idx = self.lookup(raw)
        bad = np.flatnonzero(idx < 0)
        if len(bad):
            row = int(bad[0])
            first = pd.Series(raw, dtype=object).astype(str).iloc[row]
            raise DataError(
                f"{source}: unknown {what} {first!r} (row {row + 1}; {len(bad)} unknown in all). "
                f"Every {what} must appear in the dataset; add it there or drop the row.")
        return idx

    def raw(self, idx: Sequence[int] | np.ndarray) -> np.ndarray:
        """Raw ids of dense indices."""
        return self._ids[np.asarray(idx, dtype=np.int64)]

    def extend(self, raw: Iterable[object]) -> IdMap:
        """A new map with unseen ids appended (existing indices unchanged)."""
        new = [x for x in pd.unique(pd.Series(list(raw), dtype=object).astype(str)) if x not in self._index]
        if not new:
            return self
        return IdMap(list(self._ids) + new)
