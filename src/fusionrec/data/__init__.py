"""Datasets: the typed schema, loaders, splits and the synthetic world."""

from fusionrec.data.idmap import IdMap
from fusionrec.data.schema import Dataset

__all__ = ["Dataset", "IdMap"]
