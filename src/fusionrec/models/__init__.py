"""Recommenders behind one protocol, in a registry you can grep.

Each model lives in its own module and is imported when first asked for, so optional
dependencies stay optional.
"""

from __future__ import annotations

import importlib

from fusionrec.errors import unknown_name
from fusionrec.models.base import Recommender

#: name -> "module:Class"
MODELS: dict[str, str] = {
    "pop": "fusionrec.models.popularity:Popularity",
    "itemknn": "fusionrec.models.itemknn:ItemKNN",
    "ease": "fusionrec.models.ease:EASE",
    "puresvd": "fusionrec.models.puresvd:PureSVD",
    "als": "fusionrec.models.als:ALS",
    "bpr": "fusionrec.models.bpr:BPR",
    "kg": "fusionrec.models.kg:KGRecommender",
    "mf": "fusionrec.models.mf:BiasedMF",
    "ncf": "fusionrec.models.ncf:NCF",
    "sasrec": "fusionrec.models.sasrec:SASRec",
    "gru4rec": "fusionrec.models.gru4rec:GRU4Rec",
    "caser": "fusionrec.models.caser:Caser",
    "ratingformer": "fusionrec.models.rating_transformer:RatingFormer",
    "fusion": "fusionrec.models.fusion:Fusion",
    "social": "fusionrec.models.social:SocialRecommender",
}

#: models that exist but are not trained by name (built from given factors)
INTERNAL: dict[str, str] = {"factors": "fusionrec.models.factors:FactorModel"}


def get_model_class(name: str) -> type[Recommender]:
    """The class registered as ``name``; unknown names list the known ones."""
    if name not in MODELS and name not in INTERNAL:
        raise unknown_name("model", name, list(MODELS))
    module, cls = (MODELS.get(name) or INTERNAL[name]).split(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["MODELS", "Recommender", "get_model_class"]
