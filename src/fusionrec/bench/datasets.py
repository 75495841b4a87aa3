"""The data a benchmark reads: found (or skipped with a reason), and checksummed.

A benchmark without its dataset is not a failure: :func:`dataset_or_skip` says what is missing on
stderr and exits 0. :func:`dataset_sha256` is the checksum every result row records.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from fusionrec.errors import DataError

_CHUNK = 1 << 20


def dataset_or_skip(name: str, data_dir: str | Path | None) -> Path:
    """The data dir when catalog dataset ``name`` lies in it; otherwise say why on stderr and exit 0
    (a benchmark skipped for want of data is not a failure)."""
    from fusionrec.data.catalog import CATALOG

    spec = CATALOG[name]
    root = Path(data_dir).expanduser() if data_dir else None
    if root is None or spec.find(root) is None:
        print(f"skipped: {name} not found under {root or '(no --data-dir, FUSIONREC_DATA unset)'}; give the "
              f"datasets folder with --data-dir DIR or FUSIONREC_DATA=DIR (it must hold {spec.folders[0]}/)",
              file=sys.stderr)
        raise SystemExit(0)
    return root


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def files_sha256(folder: Path, names: list[str]) -> str:
    """One checksum of ``folder``'s files ``names``: each name with its own sha256, in sorted order."""
    h = hashlib.sha256()
    for name in sorted(names):
        path = folder / name
        if not path.is_file():
            raise DataError(f"cannot checksum {path}: no such file; the dataset folder {folder} is incomplete")
        h.update(f"{name}\0{file_sha256(path)}\n".encode())
    return h.hexdigest()


def config_sha256(config: Any) -> str:
    """Checksum of a generator config (a dataclass or a mapping of JSON values), key order ignored."""
    d = asdict(config) if is_dataclass(config) and not isinstance(config, type) else dict(config)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


def dataset_sha256(dataset: str | Path, data_dir: str | Path | None = None,
                   generator: Mapping[str, Any] | Any | None = None) -> str | None:
    """The checksum of a benchmark's data.

    - a catalog name: the files its :class:`~fusionrec.data.catalog.DatasetSpec` lists, in its folder
      under ``data_dir`` (or ``$FUSIONREC_DATA``);
    - ``"synthetic"``: the generator's default config (:class:`fusionrec.data.synthetic.SyntheticConfig`);
    - a directory: every file under it (relative paths, sorted);
    - ``generator`` given: data generated in the benchmark itself, checksummed by that config.

    Returns None when the data is not there to checksum.

    Examples
    --------
    >>> dataset_sha256("made-up", generator={"users": 10, "seed": 0})[:12]
    '1e0eb0882954'
    """
    if generator is not None:
        return config_sha256(generator)
    from fusionrec.data.catalog import CATALOG, SYNTHETIC, dataset_folder

    name = str(dataset)
    if name in CATALOG:
        try:
            folder = dataset_folder(name, data_dir)
        except DataError:
            return None
        return files_sha256(folder, list(CATALOG[name].files))
    if name == SYNTHETIC:
        from fusionrec.data.synthetic import SyntheticConfig

        return config_sha256(SyntheticConfig())
    path = Path(dataset).expanduser()
    if path.is_dir():
        files = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
        return files_sha256(path, files)
    return None
