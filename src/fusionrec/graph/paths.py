"""Explanations as knowledge-graph paths from a user's history to a recommended item.

A path links a history item to the recommended item either directly (one triple between their
nodes) or through one shared entity::

    Radiohead -[music.artist.origin]-> United Kingdom <-[music.artist.origin]- Coldplay

Each path gets ``score = weight(history item) * w(path)``: ``w = 1`` for a direct triple and
``1 / log(2 + degree(entity))`` through an entity (a shared rare entity says more than a hub such
as a country of a thousand artists, as in Adamic-Adar). The history item's weight defaults to 1; a
model passes its contribution to the item's score (see ``KGRecommender.explain_paths``).

The adjacency of a :class:`~fusionrec.graph.triples.Triples` is built once and cached, so a call
costs about ``sum(degree of the history items)`` dictionary look-ups.

Examples
--------
>>> from fusionrec.graph.triples import Triples
>>> import dataclasses, numpy as np
>>> t = Triples.from_labels(["a", "b"], ["origin", "origin"], ["uk", "uk"])
>>> t = dataclasses.replace(t, item_entity=t.entity_index.get_indexer(["a", "b"]))
>>> str(kg_paths(t, [0], 1)[0])
'a -[origin]-> uk <-[origin]- b'
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fusionrec.errors import ConfigError
from fusionrec.graph.triples import Triples

#: entity -> {neighbour: [(relation, forward)]}; forward means (entity, relation, neighbour) is a triple
Adjacency = list[dict[int, list[tuple[int, bool]]]]

_CACHE: weakref.WeakKeyDictionary[Triples, Adjacency] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class KGPath:
    """One explanation path from ``history_item`` to ``item`` (dense item indices).

    ``nodes`` are entity names from the history item's node to the item's node; ``relations[k]``
    links ``nodes[k]`` and ``nodes[k + 1]``, pointing forward when ``forward[k]``.
    """

    history_item: int
    item: int
    nodes: tuple[str, ...]
    relations: tuple[str, ...]
    forward: tuple[bool, ...]
    score: float

    def __str__(self) -> str:
        out = self.nodes[0]
        for rel, fwd, node in zip(self.relations, self.forward, self.nodes[1:], strict=True):
            out += f" -[{rel}]-> {node}" if fwd else f" <-[{rel}]- {node}"
        return out


def adjacency(triples: Triples) -> Adjacency:
    """The (cached) undirected adjacency of ``triples``, keeping each edge's direction."""
    adj = _CACHE.get(triples)
    if adj is None:
        adj = [{} for _ in range(triples.n_entities)]
        for h, r, t in triples.array().tolist():
            adj[h].setdefault(t, []).append((r, True))
            adj[t].setdefault(h, []).append((r, False))
        _CACHE[triples] = adj
    return adj


def kg_paths(
    triples: Triples,
    history_items: Sequence[int] | np.ndarray,
    item: int,
    max_paths: int = 3,
    *,
    item_weights: Mapping[int, float] | None = None,
) -> list[KGPath]:
    """Up to ``max_paths`` paths from ``history_items`` to ``item``, best (highest score) first.

    Parameters
    ----------
    triples : a graph with ``item_entity`` set (e.g. from ``triples_from_dataset``).
    history_items : dense item indices the user interacted with.
    item : the recommended item's dense index.
    item_weights : history item -> weight (e.g. its contribution to the item's score); 1 if absent.

    Returns
    -------
    Paths of one hop (a triple between the two items' nodes) or two hops (a shared entity); an
    empty list when the graph links none of the history to ``item``.
    """
    if triples.item_entity is None:
        raise ConfigError("kg_paths needs triples with item_entity (use triples_from_dataset)")
    if max_paths < 1:
        raise ConfigError(f"kg_paths: max_paths must be >= 1, got {max_paths}")
    ie = triples.item_entity
    if not 0 <= item < len(ie):
        raise ConfigError(f"kg_paths: item {item} is outside the {len(ie)} items of the graph")
    adj = adjacency(triples)
    deg = triples.degree
    names, rel_names = triples.entities, triples.relation_names
    target = int(ie[item])
    near = adj[target]
    found: list[tuple[float, int, int, tuple[int, ...], tuple[int, ...], tuple[bool, ...]]] = []
    for j in history_items:
        j = int(j)
        if j == item or not 0 <= j < len(ie):
            continue
        wj = 1.0 if item_weights is None else float(item_weights.get(j, 1.0))
        src = int(ie[j])
        if src == target:
            continue
        for x, rels in adj[src].items():
            if x == target:  # direct triple between the two items' nodes
                for r, fwd in rels:
                    found.append((wj, j, src, (target,), (r,), (fwd,)))
            elif x in near:
                w = wj / math.log(2.0 + deg[x])
                r1, f1 = rels[0]
                r2, f2 = near[x][0]  # near[x] holds edges seen from the target: flip for x -> target
                found.append((w, j, src, (x, target), (r1, r2), (f1, not f2)))
    found.sort(key=lambda p: -p[0])
    return [KGPath(j, item, (str(names[src]),) + tuple(str(names[n]) for n in nodes),
                   tuple(str(rel_names[r]) for r in rels), fwd, float(score))
            for score, j, src, nodes, rels, fwd in found[:max_paths]]
