"""Read and write datasets in the generic directory format, and read pre-split interaction files.

A dataset directory holds one file per table, named after the table::

    interactions.{csv,tsv,parquet}   user, item, [timestamp], [rating], [weight]   (required)
    items.*                          item, then side columns
    users.*                          user, then side columns
    social.*                         user, friend, [weight]
    kg.*                             head, relation, tail
    item_entities.*                  item, entity
    side_events.*                    user, item, [kind], [timestamp], [value]   (other behaviours, e.g.
                                     tagging; inputs only; an empty timestamp = untimed)
    schema.json                      {"items": {"col": "text|categorical|multi|numeric|image|audio"},
                                      "users": {...},
                                      "derived_items": {"tags": {"kind": "tag", "top": 20}}}

``derived_items`` (optional) names item columns built from side-event values
(:class:`~fusionrec.data.side_events.DerivedColumn`); they are rebuilt on load.

CSV/TSV files have a header row. Ids are read as strings, so ``"007"`` stays ``"007"``.
Image and audio columns hold paths relative to the directory; they are resolved to absolute paths.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from fusionrec.atomic import atomic_write_dir
from fusionrec.data.schema import COLUMN_KINDS, Dataset
from fusionrec.data.side_events import DerivedColumn
from fusionrec.errors import DataError

log = logging.getLogger(__name__)

ID_COLUMNS: tuple[str, ...] = ("user", "item", "friend", "head", "relation", "tail", "entity", "kind")
TABLES: tuple[str, ...] = ("interactions", "items", "users", "social", "kg", "item_entities", "side_events")
SUFFIXES: tuple[str, ...] = (".tsv", ".csv", ".parquet")
SCHEMA_FILE = "schema.json"
MEDIA_KINDS: tuple[str, ...] = ("image", "audio")

# pandas' default NA markers; an id column gets only "" so that an id such as "NA" survives.
_NA_VALUES: tuple[str, ...] = (
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
)


# ---------------------------------------------------------------------------------------- reading
def _header(path: Path, sep: str) -> list[str]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        for row in csv.reader(f, delimiter=sep):
            return row
    return []


def read_table(path: str | Path, *, str_columns: Iterable[str] = ()) -> pd.DataFrame:
    """Read one ``.csv``, ``.tsv`` or ``.parquet`` table with a header row.

    Parameters
    ----------
    path
        The file. CSV is comma-separated, TSV tab-separated, both UTF-8 with a header row.
    str_columns
        Columns to read as strings besides the id columns
        (``user, item, friend, head, relation, tail, entity``), e.g. a zip code.

    Returns
    -------
    pd.DataFrame
        Id columns and ``str_columns`` as strings; other columns as pandas infers them.

    Raises
    ------
    DataError
        The file is missing, of an unknown type, empty, or has a header but no rows.

    Examples
    --------
    >>> df = read_table("data/interactions.tsv")  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"table file {path} not found; check the path.")
    suffix = path.suffix.lower()
    as_str = set(ID_COLUMNS) | set(str_columns)
    if suffix == ".parquet":
        df = pd.read_parquet(path)
        for c in df.columns:
            if c in as_str:
                df[c] = pd.Series([None if pd.isna(v) else str(v) for v in df[c]], index=df.index, dtype=object)
    elif suffix in (".csv", ".tsv"):
        sep = "\t" if suffix == ".tsv" else ","
        try:
            cols = _header(path, sep)
        except UnicodeDecodeError as e:
            raise DataError(f"{path} is not UTF-8 ({e}); re-save it as UTF-8.") from e
        if not cols:
            raise DataError(f"{path} is empty; it needs a header row ({'tab' if sep == chr(9) else 'comma'}"
                            f"-separated) and at least one data row.")
        na = {c: ([""] if c in as_str else list(_NA_VALUES)) for c in cols}
        try:
            df = pd.read_csv(path, sep=sep, dtype={c: str for c in cols if c in as_str},
                             keep_default_na=False, na_values=na, encoding="utf-8-sig")
        except pd.errors.ParserError as e:
            raise DataError(f"{path} could not be parsed ({e}); check the separator "
                            f"({'tab' if sep == chr(9) else 'comma'} for {suffix}) and quoting.") from e
        except UnicodeDecodeError as e:
            raise DataError(f"{path} is not UTF-8 ({e}); re-save it as UTF-8.") from e
    else:
        raise DataError(f"{path}: unknown table type {suffix!r}; use one of {list(SUFFIXES)}.")
    if len(df) == 0:
        raise DataError(f"{path} has a header but no rows; add data rows or remove the file.")
    return df


def find_table(root: Path, table: str) -> Path | None:
    """The file of ``table`` in ``root`` (any of :data:`SUFFIXES`), or None."""
    found = [root / f"{table}{s}" for s in SUFFIXES if (root / f"{table}{s}").is_file()]
    if len(found) > 1:
        raise DataError(f"{root}: several files for table {table!r}: {[p.name for p in found]}; keep one.")
    return found[0] if found else None


def _read_schema(root: Path) -> tuple[dict[str, dict[str, str]], dict[str, DerivedColumn]]:
    path = root / SCHEMA_FILE
    if not path.is_file():
        return {"items": {}, "users": {}}, {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path} is not valid JSON ({e}); fix it or delete it to infer column kinds.") from e
    if not isinstance(raw, dict) or set(raw) - {"items", "users", "derived_items"}:
        got = list(raw) if isinstance(raw, dict) else type(raw).__name__
        raise DataError(f"{path} must be an object with keys 'items', 'users' and/or 'derived_items'; got {got}.")
    derived: dict[str, DerivedColumn] = {}
    for col, spec in (raw.get("derived_items") or {}).items():
        if not isinstance(spec, dict) or set(spec) - {"kind", "top"} or "kind" not in spec:
            raise DataError(f"{path}: derived_items[{col!r}] must be {{\"kind\": \"tag\", \"top\": 20}} (top "
                            f"optional); got {spec!r}.")
        try:
            derived[col] = DerivedColumn(**spec)
        except ValueError as e:
            raise DataError(f"{path}: derived_items[{col!r}]: {e}") from e
    out: dict[str, dict[str, str]] = {}
    for key in ("items", "users"):
        sch = raw.get(key, {})
        if not isinstance(sch, dict) or not all(isinstance(v, str) for v in sch.values()):
            raise DataError(f"{path}: {key!r} must map column names to kinds, e.g. {{\"title\": \"text\"}}.")
        bad = {k: v for k, v in sch.items() if v not in COLUMN_KINDS}
        if bad:
            raise DataError(f"{path}: unknown column kind(s) {bad} in {key!r}; use one of {list(COLUMN_KINDS)}.")
        out[key] = dict(sch)
    return out, derived


def _apply_kinds(df: pd.DataFrame, schema: dict[str, str], root: Path, path: Path) -> pd.DataFrame:
    """Coerce side columns to their declared kind and resolve media paths against ``root``."""
    missing = [c for c in schema if c not in df.columns]
    if missing:
        raise DataError(f"{root / SCHEMA_FILE} names column(s) {missing} that {path.name} lacks; "
                        f"it has {list(df.columns)}.")
    for col, kind in schema.items():
        if kind == "numeric":
            v = pd.to_numeric(df[col], errors="coerce")
            bad = np.flatnonzero(v.isna().to_numpy() & df[col].notna().to_numpy())
            if len(bad):
                raise DataError(f"{path}: column {col!r} is declared numeric but row {bad[0] + 1} holds "
                                f"{df[col].iloc[bad[0]]!r}; fix the value or declare the column categorical.")
            df[col] = v.astype(np.float64)
        elif kind == "multi":
            df[col] = df[col].fillna("").astype(str)
        elif kind in MEDIA_KINDS:
            base = root.resolve()
            df[col] = pd.Series([None if pd.isna(v) or str(v) == "" else str(base / str(v)) for v in df[col]],
                                index=df.index, dtype=object)
            n_missing = sum(1 for v in df[col] if v is not None and not os.path.exists(v))
            if n_missing:
                log.warning("%s: %d of the %s paths in column %r do not exist", path, n_missing, kind, col)
    return df


def load_directory(path: str | Path, name: str | None = None) -> Dataset:
    """Load a dataset directory in the generic format (see the module docstring).

    Parameters
    ----------
    path
        The directory.
    name
        Dataset name; defaults to the directory name.

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        The directory or its interactions file is missing, or a table is malformed.

    Examples
    --------
    >>> ds = load_directory("my_data")  # doctest: +SKIP
    """
    root = Path(path)
    expected = (f"interactions.{{tsv,csv,parquet}} (required); optional items.*, users.*, social.*, "
                f"kg.*, item_entities.*, side_events.* and {SCHEMA_FILE}")
    if not root.is_dir():
        raise DataError(f"dataset directory {root} not found; expected a directory with {expected}.")
    files = {t: find_table(root, t) for t in TABLES if t != "interactions"}
    inter_file = find_table(root, "interactions")
    if inter_file is None:
        has = sorted(p.name for p in root.iterdir())[:20]
        raise DataError(f"{root} has no interactions file; expected {expected}. It has: {has}.")
    schema, derived = _read_schema(root)
    frames: dict[str, pd.DataFrame | None] = {}
    for table, f in files.items():
        if f is None:
            frames[table] = None
            continue
        sch = schema["items"] if table == "items" else schema["users"] if table == "users" else {}
        if table == "items":  # derived columns are rebuilt from the side events: the file may lack them
            sch = {c: k for c, k in sch.items() if c not in derived}
        strs = [c for c, k in sch.items() if k != "numeric"] + (["value"] if table == "side_events" else [])
        df = read_table(f, str_columns=strs)
        if table in ("items", "users"):
            df = _apply_kinds(df, sch, root, f)
        frames[table] = df
    ds = Dataset.from_frames(
        read_table(inter_file), items=frames["items"], users=frames["users"], social=frames["social"], kg=frames["kg"],
        item_entities=frames["item_entities"], side_events=frames["side_events"], item_schema=schema["items"], user_schema=schema["users"],
        name=name or root.resolve().name, source=str(inter_file), meta={"path": str(root.resolve())},
        derived_items=derived)
    log.info("loaded %r from %s: %d users, %d items, %d interactions",
             ds.name, root, ds.n_users, ds.n_items, ds.n_interactions)
    return ds


# ---------------------------------------------------------------------------------------- writing
def _write_tsv(df: pd.DataFrame, path: Path) -> None:
    df.to_csv(path, sep="\t", index=False, encoding="utf-8", lineterminator="\n")


def _side_table(side: pd.DataFrame, key: str, ids: np.ndarray) -> pd.DataFrame:
    out = side.reset_index(drop=True).copy()
    out.insert(0, key, ids)
    return out


def write_directory(ds: Dataset, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``ds`` as a generic dataset directory (raw ids, TSV files, ``schema.json``).

    The directory appears atomically: files go to a temporary folder next to ``out`` that is
    renamed at the end, so a failure never leaves a half-written directory. Image and audio
    columns are written as absolute paths (the files are not copied).

    Parameters
    ----------
    ds
        The dataset.
    out
        The directory to create.
    overwrite
        Replace ``out`` when it exists.

    Returns
    -------
    Path
        ``out``.

    Examples
    --------
    >>> write_directory(ds, "exported/ml-100k")  # doctest: +SKIP
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise DataError(f"{out} already exists; pass overwrite=True or choose another directory.")
    out.parent.mkdir(parents=True, exist_ok=True)

    def fill(tmp: Path) -> None:
        inter = ds.interactions
        df = pd.DataFrame({"user": ds.user_ids.raw(inter["user"].to_numpy()),
                           "item": ds.item_ids.raw(inter["item"].to_numpy())})
        if ds.has_timestamps:
            df["timestamp"] = inter["timestamp"].to_numpy(np.int64)
        for c in ("rating", "weight"):
            if c in inter.columns:
                df[c] = inter[c].to_numpy()
        _write_tsv(df, tmp / "interactions.tsv")
        if ds.items is not None:
            _write_tsv(_side_table(ds.items, "item", ds.item_ids.ids), tmp / "items.tsv")
        if ds.users is not None:
            _write_tsv(_side_table(ds.users, "user", ds.user_ids.ids), tmp / "users.tsv")
        if ds.social is not None:
            _write_tsv(pd.DataFrame({"user": ds.user_ids.raw(ds.social["user"].to_numpy()),
                                     "friend": ds.user_ids.raw(ds.social["friend"].to_numpy()),
                                     "weight": ds.social["weight"].to_numpy()}), tmp / "social.tsv")
        if ds.kg is not None:
            _write_tsv(ds.kg[["head", "relation", "tail"]], tmp / "kg.tsv")
        if ds.item_entities is not None:
            _write_tsv(pd.DataFrame({"item": ds.item_ids.raw(ds.item_entities["item"].to_numpy()),
                                     "entity": ds.item_entities["entity"].to_numpy()}), tmp / "item_entities.tsv")
        if ds.side_events is not None:
            side = ds.side_events
            sdf = pd.DataFrame({"user": ds.user_ids.raw(side["user"].to_numpy()),
                                "item": ds.item_ids.raw(side["item"].to_numpy()),
                                "kind": side["kind"].to_numpy()})
            for c in ("timestamp", "value"):
                if c in side.columns:
                    sdf[c] = side[c].array
            _write_tsv(sdf, tmp / "side_events.tsv")
        schema: dict[str, object] = {"items": dict(ds.item_schema) if ds.items is not None else {},
                                     "users": dict(ds.user_schema) if ds.users is not None else {}}
        if ds.derived_items:
            schema["derived_items"] = {c: {"kind": d.kind, "top": d.top} for c, d in ds.derived_items.items()}
        (tmp / SCHEMA_FILE).write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")

    atomic_write_dir(out, fill)
    log.info("wrote %r to %s", ds.name, out)
    return out


# ---------------------------------------------------------------------------------------- pre-split files
def read_interactions_file(path: str | Path) -> pd.DataFrame:
    """Read a user-supplied interactions file (e.g. a pre-made test split).

    The file is TSV or CSV (the separator is sniffed from the header line: tab, else comma) with
    a header naming ``user, item`` and optionally ``timestamp``, ``rating``, ``weight``.

    Parameters
    ----------
    path
        The file.

    Returns
    -------
    pd.DataFrame
        Raw ids as strings in file order: ``user, item, timestamp`` (int64, 0 when the file has
        none) and ``rating`` / ``weight`` (float32) when present.

    Raises
    ------
    DataError
        Missing or empty file, a missing column, an empty id, or a non-numeric value (row named).

    Examples
    --------
    >>> test = read_interactions_file("test.tsv")  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"interactions file {path} not found; check the path.")
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            first = f.readline()
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 ({e}); re-save it as UTF-8.") from e
    if not first.strip():
        raise DataError(f"{path} is empty; it needs a header row 'user<TAB>item<TAB>timestamp' "
                        f"(or comma-separated) and data rows.")
    sep = "\t" if "\t" in first else ","
    cols = _header(path, sep)
    missing = [c for c in ("user", "item") if c not in cols]
    if missing:
        raise DataError(f"{path} needs column(s) {missing} in its header; it has {cols}. "
                        f"Name the columns user, item[, timestamp][, rating].")
    wanted = [c for c in ("user", "item", "timestamp", "rating", "weight") if c in cols]
    df = pd.read_csv(path, sep=sep, usecols=wanted, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    if len(df) == 0:
        raise DataError(f"{path} has a header but no rows; add data rows.")
    for c in ("user", "item"):
        empty = np.flatnonzero((df[c].str.strip() == "").to_numpy())
        if len(empty):
            raise DataError(f"{path}: empty {c} id at row {empty[0] + 1} (line {empty[0] + 2}); fill or drop the row.")
    out = pd.DataFrame({"user": df["user"], "item": df["item"]})
    out["timestamp"] = _numeric(df, "timestamp", path, np.int64) if "timestamp" in df else np.int64(0)
    for c in ("rating", "weight"):
        if c in df.columns:
            out[c] = _numeric(df, c, path, np.float32)
    return out


def _numeric(df: pd.DataFrame, col: str, path: Path, dtype: type) -> np.ndarray:
    v = pd.to_numeric(df[col].str.strip(), errors="coerce")
    bad = np.flatnonzero(v.isna().to_numpy())
    if len(bad):
        r = int(bad[0])
        hint = "use unix seconds (integers)" if col == "timestamp" else "use a number"
        raise DataError(f"{path}: {col} {df[col].iloc[r]!r} at row {r + 1} (line {r + 2}) is not a number; {hint}.")
    return v.to_numpy(dtype)


__all__ = ["ID_COLUMNS", "find_table", "load_directory", "read_interactions_file", "read_table", "write_directory"]
