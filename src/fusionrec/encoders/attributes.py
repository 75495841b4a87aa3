"""Attribute columns -> integer codes and standardised numbers.

=============  =====================================================================================
kind           encoding
=============  =====================================================================================
categorical    (n,) int64 codes; 0 = missing or unknown, c >= 1 is ``vocab[col][c - 1]``
multi          CSR ``(indptr (n + 1,), codes)`` of codes >= 1: values split on ``|``, stripped, empty
               and repeated values dropped, unknown values dropped
numeric        (n, k) float32 standardised with the fitted mean / std (std 0 -> 1), missing -> 0, plus
               a (n, k) bool missing mask; text that is not a number counts as missing (logged).
               The fitted quantile edges (standardised units) follow mean and std in
               ``numeric_stats[col]``; :func:`piecewise_linear` turns values into bin codes with them
=============  =====================================================================================

A vocabulary lists values by decreasing frequency, ties by value, so codes are deterministic.
Given ``vocab`` (and ``numeric_stats``), new rows reuse them: an unseen value becomes 0.

Examples
--------
>>> df = pd.DataFrame({"genre": ["rock", "jazz", "rock", None], "tags": ["a|b", "b", "", "c| a"]})
>>> a = encode_attributes(df, {"genre": "categorical", "tags": "multi"})
>>> a.categorical["genre"].tolist(), a.vocab["genre"]
([1, 2, 1, 0], ['rock', 'jazz'])
>>> a.multi["tags"][0].tolist(), a.vocab["tags"]
([0, 2, 3, 3, 5], ['a', 'b', 'c'])
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fusionrec.data.schema import MULTI_SEP

log = logging.getLogger(__name__)

ATTRIBUTE_KINDS = ("categorical", "multi", "numeric")


@dataclass
class Attributes:
    categorical: dict[str, np.ndarray] = field(default_factory=dict)
    multi: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    numeric: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    numeric_missing: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), bool))
    numeric_columns: list[str] = field(default_factory=list)
    numeric_stats: dict[str, list[float]] = field(default_factory=dict)  # col -> [mean, std, *quantile edges]
    vocab: dict[str, list[str]] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # col -> {"missing": .., "unknown": ..}


def _value(v: object) -> str | None:
    """A cell as a clean string, or None when missing; 3.0 and 3 spell the same."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, float | np.floating):
        if math.isnan(v):
            return None
        if float(v).is_integer():
            return str(int(v))
    if isinstance(v, bool | np.bool_):
        return str(bool(v))
    s = str(v).strip()
    return s or None


def _split(v: object) -> list[str]:
    s = _value(v)
    if s is None:
        return []
    out: list[str] = []
    for part in s.split(MULTI_SEP):
        p = part.strip()
        if p and p not in out:
            out.append(p)
    return out


def build_vocab(values: list[str]) -> list[str]:
    """Distinct values by decreasing count, ties by value."""
    c = Counter(values)
    return sorted(c, key=lambda v: (-c[v], v))


#: quantile bins per numeric column for :func:`piecewise_linear`
NUMERIC_BINS = 16


def quantile_edges(values: np.ndarray, bins: int = NUMERIC_BINS) -> list[float]:
    """Distinct quantiles of ``values`` at 0, 1/bins, ..., 1 (fewer when values repeat)."""
    if not len(values):
        return []
    return [float(e) for e in np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)))]


def piecewise_linear(numeric: np.ndarray, missing: np.ndarray, columns: list[str],
                     stats: Mapping[str, list[float]]) -> np.ndarray:
    """Piecewise-linear encoding of standardised numeric columns, (n, total bins) float32.

    Bin ``b`` of a value v with edges e: 0 below e[b], 1 above e[b+1], linear in between (Gorishniy,
    Rubachev & Babenko, "On Embeddings for Numerical Features in Tabular Deep Learning", NeurIPS
    2022). A linear layer on top can then follow any piecewise-linear curve in v: a movie's release
    year, for example, predicts its audience far from linearly. Missing values encode as zeros;
    columns fitted before edges were kept (stats of length 2) contribute no bins.
    """
    parts = []
    for j, col in enumerate(columns):
        edges = np.asarray(stats.get(col, [])[2:], dtype=np.float64)
        if len(edges) < 2:
            continue
        lo, hi = edges[:-1], edges[1:]
        v = numeric[:, j : j + 1].astype(np.float64)
        enc = np.clip((v - lo) / np.maximum(hi - lo, 1e-12), 0.0, 1.0)
        parts.append(np.where(missing[:, j : j + 1], 0.0, enc))
    if not parts:
        return np.zeros((len(numeric), 0), np.float32)
    return np.concatenate(parts, axis=1).astype(np.float32)


def encode_attributes(frame: pd.DataFrame | None, schema: Mapping[str, str], *, n: int | None = None,
                      vocab: Mapping[str, list[str]] | None = None,
                      numeric_stats: Mapping[str, list[float]] | None = None) -> Attributes:
    """Encode the categorical / multi / numeric columns of ``frame`` named in ``schema``.

    Parameters
    ----------
    frame : rows in dense-index order (None = no table: every row missing)
    schema : {column: kind}; other kinds are skipped
    n : row count (default ``len(frame)``)
    vocab, numeric_stats : reuse these (new rows: unseen values -> 0); columns absent here are fitted
    """
    if n is None:
        if frame is None:
            raise ValueError("encode_attributes needs n (the row count) when there is no frame")
        n = len(frame)
    if frame is not None and len(frame) != n:
        raise ValueError(f"encode_attributes: frame has {len(frame)} rows, expected n={n}")
    vocab = dict(vocab or {})
    stats = dict(numeric_stats or {})
    out = Attributes()

    def column(col: str) -> list[object]:
        if frame is None or col not in frame.columns:
            return [None] * n
        return frame[col].tolist()

    num_cols = [c for c, k in schema.items() if k == "numeric"]
    for col, kind in schema.items():
        if kind == "categorical":
            vals = [_value(v) for v in column(col)]
            voc = vocab.get(col)
            if voc is None:
                voc = build_vocab([v for v in vals if v is not None])
            pos = {v: i + 1 for i, v in enumerate(voc)}
            codes = np.array([pos.get(v, 0) if v is not None else 0 for v in vals], dtype=np.int64)
            out.categorical[col] = codes
            out.vocab[col] = list(voc)
            out.counts[col] = {"missing": sum(v is None for v in vals),
                               "unknown": sum(v is not None and v not in pos for v in vals)}
        elif kind == "multi":
            lists = [_split(v) for v in column(col)]
            voc = vocab.get(col)
            if voc is None:
                voc = build_vocab([v for vs in lists for v in vs])
            pos = {v: i + 1 for i, v in enumerate(voc)}
            indptr = np.zeros(n + 1, np.int64)
            flat: list[int] = []
            unknown = 0
            for r, vs in enumerate(lists):
                known = [pos[v] for v in vs if v in pos]
                unknown += len(vs) - len(known)
                flat.extend(known)
                indptr[r + 1] = len(flat)
            out.multi[col] = (indptr, np.array(flat, dtype=np.int64))
            out.vocab[col] = list(voc)
            out.counts[col] = {"missing": sum(not vs for vs in lists), "unknown": unknown}

    k = len(num_cols)
    out.numeric = np.zeros((n, k), np.float32)
    out.numeric_missing = np.zeros((n, k), bool)
    out.numeric_columns = num_cols
    for j, col in enumerate(num_cols):
        raw = pd.Series(column(col), dtype=object)
        v = np.array(pd.to_numeric(raw, errors="coerce"), dtype=np.float64)
        v[~np.isfinite(v)] = np.nan
        miss = np.isnan(v)
        not_number = miss & np.array([_value(x) is not None for x in raw], dtype=bool)
        bad = int(not_number.sum())
        if bad:
            log.warning("numeric column %r: %d value(s) are not numbers (e.g. %r); treated as missing", col, bad,
                        raw[not_number].iloc[0])
        if col in stats:
            fitted = [float(s) for s in stats[col]]
            mean, std = fitted[:2]
        else:
            ok = v[~miss]
            mean = float(ok.mean()) if len(ok) else 0.0
            sd = float(ok.std()) if len(ok) else 0.0
            std = sd if sd > 1e-12 else 1.0
            fitted = [mean, std, *quantile_edges((ok - mean) / std)]
        out.numeric[:, j] = np.where(miss, 0.0, (np.nan_to_num(v) - mean) / std)
        out.numeric_missing[:, j] = miss
        out.numeric_stats[col] = fitted
        out.counts[col] = {"missing": int(miss.sum()), "unknown": bad}
    return out
