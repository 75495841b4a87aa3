"""Knowledge-graph triples: integer-coded (head, relation, tail) with their vocabularies.

Sources, all giving a :class:`Triples`:

* :func:`load_triples` — a user TSV file of ``head<TAB>relation<TAB>tail`` rows;
* :func:`triples_from_dataset` — a Dataset's ``kg`` table, with every item mapped to its entity
  (``item_entities``); an item without one gets its own ``item:<raw id>`` node;
* :func:`attribute_triples` — the categorical / multi-valued item columns of any dataset
  (``(item, genres, genres:Comedy)``), so ml-100k genres become a KG.

Triples built from one dataset name item nodes the same way, so :meth:`Triples.merge` joins them.
:func:`split_triples` holds out triples for link prediction, keeping every held-out entity and
relation seen in training.

Examples
--------
>>> t = Triples.from_labels(["a", "b"], ["likes", "likes"], ["c", "c"])
>>> len(t), t.n_entities, t.n_relations
(2, 3, 1)
>>> t.labels(0)
('a', 'likes', 'c')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from fusionrec.data.schema import MULTI_SEP, Dataset
from fusionrec.errors import ConfigError, DataError

#: prefix of the node of an item that has no entity in the dataset's KG
ITEM_PREFIX = "item:"
#: item column kinds turned into triples by :func:`attribute_triples`
ATTRIBUTE_KINDS = ("categorical", "multi")
#: header words accepted on the first row of a triples file
HEADER = ("head", "relation", "tail")


@dataclass(frozen=True, eq=False)
class Triples:
    """Integer-coded triples over an entity and a relation vocabulary.

    Attributes
    ----------
    heads, relations, tails : (n,) int64 indices into ``entities`` / ``relation_names``.
    entities : (n_entities,) object array of entity names (str).
    relation_names : (n_relations,) object array of relation names (str).
    item_entity : (n_items,) int64 entity index of each dense item index, or None when the
        triples do not come from a dataset.
    """

    heads: np.ndarray
    relations: np.ndarray
    tails: np.ndarray
    entities: np.ndarray
    relation_names: np.ndarray
    item_entity: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.heads)
        if not len(self.relations) == len(self.tails) == n:
            raise DataError(f"Triples: heads, relations, tails differ in length "
                            f"({n}, {len(self.relations)}, {len(self.tails)})")
        for name, arr, size in (("heads", self.heads, len(self.entities)), ("tails", self.tails, len(self.entities)),
                                ("relations", self.relations, len(self.relation_names))):
            if n and (arr.min() < 0 or arr.max() >= size):
                raise DataError(f"Triples.{name} must index a vocabulary of {size}; got values in "
                                f"[{arr.min()}, {arr.max()}]")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_labels(cls, heads: Sequence[str], relations: Sequence[str], tails: Sequence[str], *,
                    entities: Sequence[str] | np.ndarray = ()) -> Triples:
        """Code string triples; ``entities`` come first in the vocabulary (e.g. item nodes)."""
        h = np.asarray([str(x) for x in heads], dtype=object)
        r = np.asarray([str(x) for x in relations], dtype=object)
        t = np.asarray([str(x) for x in tails], dtype=object)
        ent = pd.unique(pd.Series(np.concatenate([np.asarray(list(entities), dtype=object), h, t]), dtype=object))
        ent_index = pd.Index(ent)
        rel = pd.unique(pd.Series(r, dtype=object))
        return cls(ent_index.get_indexer(h).astype(np.int64), pd.Index(rel).get_indexer(r).astype(np.int64),
                   ent_index.get_indexer(t).astype(np.int64), np.asarray(ent, dtype=object),
                   np.asarray(rel, dtype=object))

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return len(self.heads)

    def __repr__(self) -> str:
        items = "" if self.item_entity is None else f", items={len(self.item_entity)}"
        return f"Triples({len(self)} triples, entities={self.n_entities}, relations={self.n_relations}{items})"

    @property
    def n_entities(self) -> int:
        return len(self.entities)

    @property
    def n_relations(self) -> int:
        return len(self.relation_names)

    def array(self) -> np.ndarray:
        """(n, 3) int64 rows of (head, relation, tail)."""
        return np.stack([self.heads, self.relations, self.tails], axis=1)

    def labels(self, row: int) -> tuple[str, str, str]:
        """The names of triple ``row``."""
        return (str(self.entities[self.heads[row]]), str(self.relation_names[self.relations[row]]),
                str(self.entities[self.tails[row]]))

    def to_frame(self) -> pd.DataFrame:
        """head, relation, tail names as a DataFrame (what :func:`load_triples` reads back)."""
        return pd.DataFrame({"head": self.entities[self.heads], "relation": self.relation_names[self.relations],
                             "tail": self.entities[self.tails]})

    @cached_property
    def entity_index(self) -> pd.Index:
        """Entity name -> index (a pandas Index; ``get_indexer`` gives -1 for unknown names)."""
        return pd.Index(self.entities)

    @cached_property
    def degree(self) -> np.ndarray:
        """(n_entities,) number of triples each entity takes part in."""
        return (np.bincount(self.heads, minlength=self.n_entities)
                + np.bincount(self.tails, minlength=self.n_entities)).astype(np.int64)

    def subset(self, mask: np.ndarray) -> Triples:
        """The triples where ``mask`` (bool (n,) or index array) holds; vocabularies unchanged."""
        return dataclasses.replace(self, heads=self.heads[mask], relations=self.relations[mask],
                                   tails=self.tails[mask])

    def merge(self, other: Triples) -> Triples:
        """This graph plus ``other``'s triples (deduplicated), joined on entity and relation names.

        ``item_entity`` is kept from ``self`` (else taken from ``other``).
        """
        ent = pd.unique(pd.Series(np.concatenate([self.entities, other.entities]), dtype=object))
        rel = pd.unique(pd.Series(np.concatenate([self.relation_names, other.relation_names]), dtype=object))
        emap = pd.Index(ent).get_indexer(other.entities)
        rmap = pd.Index(rel).get_indexer(other.relation_names)
        rows = np.concatenate([self.array(), np.stack([emap[other.heads], rmap[other.relations],
                                                       emap[other.tails]], axis=1)])
        rows = np.unique(rows, axis=0) if len(rows) else rows.reshape(0, 3)
        item_entity = self.item_entity
        if item_entity is None and other.item_entity is not None:
            item_entity = emap[other.item_entity]
        return Triples(rows[:, 0].copy(), rows[:, 1].copy(), rows[:, 2].copy(), np.asarray(ent, dtype=object),
                       np.asarray(rel, dtype=object), item_entity)


    # ------------------------------------------------------------------ persistence
    def to_state(self, prefix: str = "kg.") -> dict[str, np.ndarray]:
        """Numeric arrays only (safetensors-ready); names are NUL-joined UTF-8 bytes."""
        state = {f"{prefix}heads": self.heads, f"{prefix}relations": self.relations, f"{prefix}tails": self.tails,
                 f"{prefix}entities": _join_names(self.entities), f"{prefix}relation_names": _join_names(self.relation_names),
                 f"{prefix}sizes": np.array([self.n_entities, self.n_relations], dtype=np.int64)}
        if self.item_entity is not None:
            state[f"{prefix}item_entity"] = self.item_entity
        return state

    @classmethod
    def from_state(cls, state: Mapping[str, np.ndarray], prefix: str = "kg.") -> Triples:
        """Inverse of :meth:`to_state`."""
        n_ent, n_rel = (int(x) for x in state[f"{prefix}sizes"])
        return cls(np.asarray(state[f"{prefix}heads"], np.int64), np.asarray(state[f"{prefix}relations"], np.int64),
                   np.asarray(state[f"{prefix}tails"], np.int64), _split_names(state[f"{prefix}entities"], n_ent),
                   _split_names(state[f"{prefix}relation_names"], n_rel),
                   np.asarray(state[f"{prefix}item_entity"], np.int64) if f"{prefix}item_entity" in state else None)


_NAME_SEP = "\x00"


def _join_names(names: np.ndarray) -> np.ndarray:
    return np.frombuffer(_NAME_SEP.join(str(x) for x in names).encode("utf-8"), dtype=np.uint8).copy()


def _split_names(arr: np.ndarray, n: int) -> np.ndarray:
    return np.asarray(bytes(np.asarray(arr, np.uint8)).decode("utf-8").split(_NAME_SEP) if n else [], dtype=object)


# ---------------------------------------------------------------------------------------- loading
def load_triples(path: str | Path) -> Triples:
    """Read a tab-separated triples file: one ``head<TAB>relation<TAB>tail`` per line.

    An optional first line ``head relation tail`` is a header; blank lines and lines starting
    with ``#`` are skipped. A row with another number of fields or an empty field is an error
    that names the line.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "kg.tsv")
    >>> _ = open(p, "w").write("head\\trelation\\ttail\\nstar wars\\tdirected_by\\tlucas\\n")
    >>> load_triples(p).labels(0)
    ('star wars', 'directed_by', 'lucas')
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"triples file {p} not found; pass a tab-separated file of head, relation, tail rows")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"triples file {p} is not UTF-8 ({e}); re-save it as UTF-8") from e
    heads: list[str] = []
    rels: list[str] = []
    tails: list[str] = []
    first = True
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.rstrip("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split("\t")
        if first and tuple(f.strip().lower() for f in fields) == HEADER:
            first = False
            continue
        first = False
        if len(fields) != 3:
            hint = " (the file must be tab-separated)" if len(fields) == 1 else ""
            raise DataError(f"{p}, line {n}: expected 3 tab-separated fields (head, relation, tail), "
                            f"got {len(fields)}{hint}: {line[:80]!r}")
        h, r, t = (f.strip() for f in fields)
        if not h or not r or not t:
            which = [name for name, v in zip(HEADER, (h, r, t), strict=True) if not v]
            raise DataError(f"{p}, line {n}: empty {', '.join(which)}; every triple needs head, relation and tail")
        heads.append(h)
        rels.append(r)
        tails.append(t)
    if not heads:
        raise DataError(f"triples file {p} holds no triples; expected head<TAB>relation<TAB>tail rows")
    return Triples.from_labels(heads, rels, tails)


def item_nodes(data: Dataset) -> np.ndarray:
    """(n_items,) object array: each item's entity name, else ``item:<raw id>``."""
    nodes = np.asarray([ITEM_PREFIX + str(x) for x in data.item_ids.ids], dtype=object)
    if data.item_entities is not None and len(data.item_entities):
        ie = data.item_entities.drop_duplicates("item", keep="first")
        nodes[ie["item"].to_numpy(np.int64)] = ie["entity"].astype(str).to_numpy(object)
    return nodes


def _with_items(triples: Triples, nodes: np.ndarray) -> Triples:
    """``triples`` with item nodes in the vocabulary and ``item_entity`` set."""
    base = Triples.from_labels([], [], [], entities=nodes)
    return dataclasses.replace(base, item_entity=base.entity_index.get_indexer(nodes).astype(np.int64)).merge(triples)


def triples_from_dataset(data: Dataset) -> Triples:
    """The dataset's KG (``data.kg``) with every item mapped to its node (``item_entity``).

    A dataset without a KG gives zero triples and one ``item:<raw id>`` node per item.
    """
    nodes = item_nodes(data)
    if data.kg is None or len(data.kg) == 0:
        kg = Triples.from_labels([], [], [])
    else:
        kg = Triples.from_labels(data.kg["head"].astype(str), data.kg["relation"].astype(str),
                                 data.kg["tail"].astype(str))
    return _with_items(kg, nodes)


def attribute_triples(data: Dataset, columns: Sequence[str] | None = None) -> Triples:
    """Item attributes as triples ``(item node, <column>, <column>:<value>)``.

    Every categorical and multi-valued (``|``-separated) column of ``data.item_schema`` is used
    unless ``columns`` names some; empty values are skipped. Items are named as in
    :func:`triples_from_dataset`, so the two merge.
    """
    nodes = item_nodes(data)
    if columns is None:
        cols = [c for c, kind in data.item_schema.items() if kind in ATTRIBUTE_KINDS]
    else:
        cols = list(columns)
        bad = [c for c in cols if data.item_schema.get(c) not in ATTRIBUTE_KINDS]
        if bad:
            raise ConfigError(f"attribute_triples: column(s) {bad} are not categorical/multi item columns; "
                              f"those are {[c for c, k in data.item_schema.items() if k in ATTRIBUTE_KINDS]}")
    heads: list[np.ndarray] = []
    rels: list[np.ndarray] = []
    tails: list[np.ndarray] = []
    if data.items is not None:
        for col in cols:
            values = data.items[col]
            ok = values.notna().to_numpy()
            idx = np.flatnonzero(ok)
            text = values.iloc[idx].astype(str)
            if data.item_schema[col] == "multi":
                parts = text.str.split(MULTI_SEP, regex=False)
                lens = parts.str.len().to_numpy()
                idx = np.repeat(idx, lens)
                flat = np.asarray([v.strip() for vs in parts for v in vs], dtype=object)
            else:
                flat = text.str.strip().to_numpy(object)
            keep = (flat != "") & (flat != "nan")
            idx, flat = idx[keep], flat[keep]
            heads.append(nodes[idx])
            rels.append(np.full(len(idx), col, dtype=object))
            tails.append(np.asarray([f"{col}:{v}" for v in flat], dtype=object))
    cat = (lambda xs: np.concatenate(xs) if xs else np.empty(0, dtype=object))  # noqa: E731
    h, r, t = cat(heads), cat(rels), cat(tails)
    frame = pd.DataFrame({"h": h, "r": r, "t": t}).drop_duplicates()
    return _with_items(Triples.from_labels(frame["h"], frame["r"], frame["t"]), nodes)


def split_triples(triples: Triples, valid_frac: float = 0.1, test_frac: float = 0.1,
                  seed: int = 0) -> tuple[Triples, Triples, Triples]:
    """Random ``(train, valid, test)`` parts; every valid/test entity and relation occurs in train.

    Held-out triples whose head, tail or relation would be unseen in train are moved back to
    train, so the held-out fractions are upper bounds.
    """
    if valid_frac < 0 or test_frac < 0 or valid_frac + test_frac >= 1:
        raise ConfigError(f"split_triples: valid_frac and test_frac must be >= 0 with a sum below 1, "
                          f"got {valid_frac} and {test_frac}")
    n = len(triples)
    r = np.random.default_rng(seed).random(n)
    test = r < test_frac
    valid = (r >= test_frac) & (r < test_frac + valid_frac)
    train = ~(test | valid)
    ent_seen = np.zeros(triples.n_entities, dtype=bool)
    ent_seen[triples.heads[train]] = True
    ent_seen[triples.tails[train]] = True
    rel_seen = np.zeros(triples.n_relations, dtype=bool)
    rel_seen[triples.relations[train]] = True
    unseen = ~(ent_seen[triples.heads] & ent_seen[triples.tails] & rel_seen[triples.relations])
    back = (test | valid) & unseen  # moving these only adds seen entities: one pass suffices
    train |= back
    test &= ~back
    valid &= ~back
    return triples.subset(train), triples.subset(valid), triples.subset(test)
