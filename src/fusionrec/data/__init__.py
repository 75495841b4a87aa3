"""Datasets: the typed schema, loaders, splits and the synthetic world."""

from fusionrec.data.catalog import describe, list_datasets, load
from fusionrec.data.idmap import IdMap
from fusionrec.data.schema import Dataset

__all__ = ["Dataset", "IdMap", "describe", "list_datasets", "load"]
