"""fusionrec: a recommender that fuses behaviour, content, social and knowledge-graph signals."""

from __future__ import annotations

__version__ = "0.1.0"
