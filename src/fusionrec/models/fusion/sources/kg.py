"""The knowledge-graph source: a TransE entity vector per item, from the dataset's KG and item attributes.

The triples (the dataset's KG plus each item's categorical and multi-valued attributes as
``item -[column]-> value`` triples) are embedded by :class:`fusionrec.graph.kge.KGEmbedding` once,
at fit time, and frozen; the item's node vector is then one more modality vector
(:class:`~fusionrec.models.fusion.sources.vectors.VectorSource` named ``kg``). The triples stay with
the model for KG-path explanations (``fusionrec explain``), whether or not the token is on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fusionrec.data.schema import Dataset


def model_triples(train: Dataset) -> Any:
    """The dataset's KG merged with its item attribute triples (a :class:`~fusionrec.graph.triples.Triples`),
    or None when it has neither."""
    from fusionrec.graph.triples import attribute_triples, triples_from_dataset

    has_kg = train.kg is not None and len(train.kg) > 0
    has_attrs = train.items is not None and any(k in ("categorical", "multi") for k in train.item_schema.values())
    if not (has_kg or has_attrs):
        return None
    triples = triples_from_dataset(train)
    return triples.merge(attribute_triples(train)) if has_attrs else triples


def kg_vectors(triples: Any, dim: int, epochs: int, seed: int, threads: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n_items, dim) TransE vectors of the items' nodes and (n_items,) whether a node has any triple."""
    from fusionrec.graph.kge import KGEConfig, KGEmbedding

    emb = KGEmbedding(KGEConfig(model="transe", dim=dim, epochs=epochs, seed=seed, threads=threads)).fit(triples)
    nodes = triples.item_entity
    present = triples.degree[nodes] > 0
    vectors = emb.entity_vectors()[nodes].astype(np.float32)
    vectors[~present] = 0
    return vectors, present
