"""Modality encoders behind one registry, with a content-hash embedding cache.

``item_content(dataset)`` -> :class:`ContentFeatures` (text / image / audio vectors, attribute
codes) for the fusion model; ``user_content(dataset)`` for profile fields; ``extend_items`` for
cold items added later. Encoders by name::

    ENCODERS = {"minilm": ..., "hashed": ..., "cnn-image": ..., "torchvision-image": ...,
                "logmel-cnn-audio": ...}

Examples
--------
>>> from fusionrec.encoders import ENCODERS
>>> sorted(ENCODERS)
['cnn-image', 'hashed', 'logmel-cnn-audio', 'minilm', 'torchvision-image']
"""

from fusionrec.encoders.content import ContentFeatures, extend_items, item_content, user_content
from fusionrec.encoders.media import AlignConfig
from fusionrec.encoders.registry import ENCODERS
from fusionrec.encoders.store import EmbeddingStore, content_key

__all__ = ["ENCODERS", "AlignConfig", "ContentFeatures", "EmbeddingStore", "content_key", "extend_items",
           "item_content", "user_content"]
