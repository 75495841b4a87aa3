"""Fetch the public archives of catalog datasets into a data directory (needs internet).

Nothing is downloaded at import time. Archives and raw files are cached in
``<data_dir>/.cache/``; the dataset folder appears atomically (extracted into a temporary folder
next to it, then renamed), so a failed download never leaves a partial folder behind.

Examples
--------
>>> download("ml-100k", "~/data")  # doctest: +SKIP
PosixPath('/home/me/data/ml-100k')
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from fusionrec.data.catalog import CATALOG, dataset_folder, resolve_data_dir
from fusionrec.errors import DataError, unknown_name

log = logging.getLogger(__name__)

CACHE_DIR = ".cache"
CHUNK = 1 << 16
TIMEOUT_S = 60.0

Progress = Callable[[str, int, int | None], None]  # (file name, bytes so far, total bytes or None)


class DownloadError(DataError):
    """A dataset could not be fetched or unpacked; the message says how to place the files by hand."""


@dataclass(frozen=True)
class Source:
    """Where a catalog dataset's files come from.

    ``kind="zip"``: one archive, extracted into the dataset folder (a single top-level folder in
    the archive is stripped). ``kind="files"``: raw files copied into the dataset folder.
    """

    urls: tuple[str, ...]
    kind: str = "zip"
    sha256: dict[str, str] = field(default_factory=dict)  # file name -> sha256 hex digest


_KGCN = "https://raw.githubusercontent.com/hwwang55/KGCN/master/data/music/"

SOURCES: dict[str, Source] = {
    "ml-100k": Source(("https://files.grouplens.org/datasets/movielens/ml-100k.zip",)),
    "ml-latest-small": Source(("https://files.grouplens.org/datasets/movielens/ml-latest-small.zip",)),
    "lastfm-2k": Source(("https://files.grouplens.org/datasets/hetrec2011/hetrec2011-lastfm-2k.zip",)),
    "kg-lastfm": Source(
        (_KGCN + "kg.txt", _KGCN + "item_index2entity_id.txt", _KGCN + "user_artists.dat"),
        kind="files",
        sha256={
            "kg.txt": "f62bbc8f717c9f68e66dff6faeaa71025092acc11a0f1b4878b953eb05f946a9",
            "item_index2entity_id.txt": "f9693bdde538f755d09b9931b0be662a98965e538658a00c2050912c0adf487b",
            "user_artists.dat": "254272fa721c3935e8be286d28c051b206844307128698ab4eaa41d483379416",
        },
    ),
}


def source_urls(name: str, mirror: str | None = None) -> list[str]:
    """The URLs of ``name``'s files; ``mirror`` replaces everything before the file name.

    Examples
    --------
    >>> source_urls("ml-100k", mirror="http://127.0.0.1:8000/data")
    ['http://127.0.0.1:8000/data/ml-100k.zip']
    """
    if name not in SOURCES:
        raise unknown_name("dataset", name, list(SOURCES))
    urls = list(SOURCES[name].urls)
    if mirror:
        urls = [mirror.rstrip("/") + "/" + _basename(u) for u in urls]
    return urls


def _basename(url: str) -> str:
    return PurePosixPath(urllib.parse.urlparse(url).path).name


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _manual_hint(name: str, data_dir: Path) -> str:
    urls = ", ".join(SOURCES[name].urls)
    return (f"To place the files by hand, download {urls} on a machine with internet and unpack them into "
            f"{data_dir / CATALOG[name].folders[0]} (files {list(CATALOG[name].files)}).")


def _fetch(url: str, dest: Path, name: str, data_dir: Path, progress: Progress | None) -> None:
    """Download ``url`` to ``dest`` through a temporary file (no partial ``dest`` on failure)."""
    part = dest.with_name(f"{dest.name}.part-{uuid.uuid4().hex[:8]}")
    log.info("downloading %s", url)
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp, open(part, "wb") as out:
            total = resp.headers.get("Content-Length")
            total_n = int(total) if total and total.isdigit() else None
            done = 0
            while block := resp.read(CHUNK):
                out.write(block)
                done += len(block)
                if progress is not None:
                    progress(dest.name, done, total_n)
        if part.stat().st_size == 0:
            raise DownloadError(f"{url} returned an empty file. {_manual_hint(name, data_dir)}")
        part.replace(dest)
    except urllib.error.HTTPError as e:
        e.close()
        raise DownloadError(f"downloading {url} failed: HTTP {e.code} {e.reason}. "
                            f"{_manual_hint(name, data_dir)}") from e
    except urllib.error.URLError as e:
        raise DownloadError(f"could not reach {url} ({e.reason}); is there no network? "
                            f"{_manual_hint(name, data_dir)}") from e
    except (TimeoutError, ConnectionError) as e:
        raise DownloadError(f"downloading {url} failed ({e}); check the network and retry. "
                            f"{_manual_hint(name, data_dir)}") from e
    finally:
        part.unlink(missing_ok=True)


def _extract_zip(archive: Path, into: Path) -> Path:
    """Extract ``archive`` into ``into``; the content root (a single top folder is stripped)."""
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                p = PurePosixPath(info.filename)
                if p.is_absolute() or ".." in p.parts:
                    raise DownloadError(f"{archive} holds an unsafe path {info.filename!r}; refusing to extract.")
            zf.extractall(into)
    except zipfile.BadZipFile as e:
        archive.unlink(missing_ok=True)
        raise DownloadError(f"{archive} is not a valid zip archive ({e}); it was deleted, retry the download.") from e
    entries = [p for p in into.iterdir() if p.name != "__MACOSX"]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return into


def download(name: str, data_dir: str | Path | None, *, mirror: str | None = None, force: bool = False,
             progress: Progress | None = None) -> Path:
    """Download catalog dataset ``name`` into ``data_dir`` and return its folder.

    Parameters
    ----------
    name
        A name in :data:`fusionrec.data.catalog.CATALOG`.
    data_dir
        The data directory (created if missing); None means ``$FUSIONREC_DATA``.
    mirror
        A base URL that replaces the official one up to the file name (for mirrors and tests).
    force
        Download and replace the folder even when it is already present.
    progress
        Called as ``progress(file_name, bytes_done, total_bytes_or_None)`` while downloading.

    Returns
    -------
    Path
        The dataset folder, e.g. ``<data_dir>/ml-100k``.

    Raises
    ------
    DownloadError
        No network, an HTTP error, a checksum mismatch or a damaged archive. Nothing partial is left.

    Examples
    --------
    >>> download("ml-100k", "~/data")  # doctest: +SKIP
    """
    if name not in CATALOG or name not in SOURCES:
        raise unknown_name("dataset", name, list(SOURCES))
    root = resolve_data_dir(data_dir)
    if root is None:
        raise DataError("download needs a data directory: pass --data-dir DIR (data_dir=...) or set FUSIONREC_DATA.")
    spec, src = CATALOG[name], SOURCES[name]
    if not force:
        try:
            folder = dataset_folder(name, root)
            log.info("%s is already in %s; pass force=True to download again", name, folder)
            return folder
        except DataError:
            pass
    new_root = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    cache = root / CACHE_DIR
    new_cache = not cache.exists()
    cache.mkdir(exist_ok=True)
    target = root / spec.folders[0]
    tmp = root / f".{spec.folders[0]}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        files: list[Path] = []
        for url in source_urls(name, mirror):
            dest = cache / _basename(url)
            if force or not dest.is_file() or dest.stat().st_size == 0:
                _fetch(url, dest, name, root, progress)
            want = src.sha256.get(dest.name)
            if want is not None and (got := _sha256(dest)) != want:
                dest.unlink()
                raise DownloadError(f"{dest.name} from {url} has sha256 {got}, expected {want}; the file was "
                                    f"deleted. Retry, or use the official source. {_manual_hint(name, root)}")
            files.append(dest)
        tmp.mkdir()
        if src.kind == "zip":
            content = _extract_zip(files[0], tmp)
        else:
            content = tmp
            for f in files:
                shutil.copyfile(f, tmp / f.name)
        missing = [f for f in spec.files if not (content / f).is_file()]
        if missing:
            raise DownloadError(f"the download of {name} lacks {missing}; the archive may have changed. "
                                f"{_manual_hint(name, root)}")
        old = None
        if target.exists():
            old = root / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            target.rename(old)
        content.rename(target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if new_cache and not any(cache.iterdir()):
            cache.rmdir()
        if new_root and not any(root.iterdir()):
            root.rmdir()
    log.info("%s is ready in %s", name, target)
    return target


__all__ = ["SOURCES", "DownloadError", "Source", "download", "source_urls"]
