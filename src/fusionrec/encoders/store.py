"""A content-addressed embedding cache: expensive encoders run once per content, not once per epoch.

A key is the 16-byte blake2b digest of ``encoder id + NUL + content bytes`` (:func:`content_key`):
the same text, or the same file bytes, under the same encoder gives the same key, wherever the
file lies and whatever the item's id. A namespace is one safetensors file
``<root>/<namespace>.safetensors`` holding ``keys`` (n, 16) uint8 and ``vectors`` (n, d), written
atomically (temporary file, fsync, rename), so a crash leaves the old file or the new one.

The root is the ``root`` argument, else ``$FUSIONREC_CACHE``, else ``~/.cache/fusionrec``
(:func:`resolve_cache_dir` is the one place the encoders read the environment).

Examples
--------
>>> import tempfile
>>> store = EmbeddingStore(tempfile.mkdtemp(), "demo")
>>> k = [content_key("enc-v1", "hello"), content_key("enc-v1", "world")]
>>> store.put_many(k[:1], np.ones((1, 4), np.float32))
>>> vecs, found = store.get_many(k)
>>> found.tolist(), vecs.shape
([True, False], (2, 4))
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

log = logging.getLogger(__name__)

ENV_VAR = "FUSIONREC_CACHE"
KEY_BYTES = 16
FORMAT = "fusionrec-embeddings-v1"
_NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def resolve_cache_dir(root: str | Path | None = None) -> Path:
    """The cache root: ``root``, else ``$FUSIONREC_CACHE``, else ``~/.cache/fusionrec``."""
    if root is not None and str(root) != "":
        return Path(root).expanduser()
    env = os.environ.get(ENV_VAR, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "fusionrec"


def content_key(encoder_id: str, content: bytes | str) -> bytes:
    """16-byte blake2b digest of ``encoder_id``, a NUL byte and ``content`` (str is UTF-8 encoded)."""
    h = hashlib.blake2b(digest_size=KEY_BYTES)
    h.update(encoder_id.encode("utf-8"))
    h.update(b"\0")
    h.update(content.encode("utf-8") if isinstance(content, str) else content)
    return h.digest()


def namespace_for(prefix: str, encoder_id: str) -> str:
    """A file-safe namespace ``<prefix>-<slug>-<8 hex>`` for an encoder id of any spelling."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder_id.rsplit("/", 1)[-1]).strip("._-")[:48] or "enc"
    return f"{prefix}-{slug}-{hashlib.blake2b(encoder_id.encode(), digest_size=4).hexdigest()}"


def _as_keys(keys: Sequence[bytes] | np.ndarray) -> list[bytes]:
    if isinstance(keys, np.ndarray):
        if keys.dtype != np.uint8 or keys.ndim != 2 or keys.shape[1] != KEY_BYTES:
            raise ValueError(f"keys must be a (n, {KEY_BYTES}) uint8 array or a list of {KEY_BYTES}-byte "
                             f"strings, got an array of {keys.dtype} {keys.shape}")
        return [bytes(r) for r in keys]
    out = [bytes(k) for k in keys]
    bad = [k for k in out if len(k) != KEY_BYTES]
    if bad:
        raise ValueError(f"keys must be {KEY_BYTES} bytes (use content_key), got one of {len(bad[0])} bytes")
    return out


class EmbeddingStore:
    """Vectors keyed by content hash, persisted as one safetensors file per namespace.

    Parameters
    ----------
    root : the cache directory (see :func:`resolve_cache_dir`).
    namespace : file stem; one namespace holds vectors of one width and dtype (e.g. one encoder).
    """

    def __init__(self, root: str | Path | None = None, namespace: str = "default") -> None:
        if not isinstance(namespace, str) or not _NAMESPACE.match(namespace):
            raise ValueError(f"EmbeddingStore namespace must be 1-128 of [A-Za-z0-9._-] starting with a letter "
                             f"or digit, got {namespace!r}")
        self.root = resolve_cache_dir(root)
        self.namespace = namespace
        self.path = self.root / f"{namespace}.safetensors"
        self._index: dict[bytes, int] = {}
        self._vectors: np.ndarray | None = None
        self._stamp: tuple[int, int] | None = None  # (mtime_ns, size) of the file we read

    def __repr__(self) -> str:
        return f"EmbeddingStore({str(self.root)!r}, {self.namespace!r})"

    def __len__(self) -> int:
        self._refresh()
        return len(self._index)

    # ------------------------------------------------------------------ disk
    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _refresh(self) -> None:
        """Read the file when it changed since we last read it (another process may have written)."""
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return
        self._index, self._vectors, self._stamp = {}, None, stamp
        if stamp is None:
            return
        try:
            t = st_load(self.path.read_bytes())
            keys, vecs = t["keys"], t["vectors"]
            if keys.dtype != np.uint8 or keys.ndim != 2 or keys.shape[1] != KEY_BYTES or len(keys) != len(vecs):
                raise ValueError(f"keys {keys.dtype} {keys.shape} vs vectors {vecs.shape}")
        except Exception as e:  # a damaged cache is rebuilt, never fatal
            log.warning("embedding cache %s is unreadable (%s: %s); starting it afresh", self.path,
                        type(e).__name__, e)
            return
        self._index = {bytes(k): i for i, k in enumerate(keys)}
        self._vectors = vecs

    def _write(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        data = st_save({"keys": np.ascontiguousarray(keys), "vectors": np.ascontiguousarray(vectors)},
                       metadata={"format": FORMAT, "namespace": self.namespace})
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.root)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._stamp = self._file_stamp()

    # ------------------------------------------------------------------ API
    def get_many(self, keys: Sequence[bytes] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Look keys up.

        Returns
        -------
        vectors : (n, d) in the stored dtype; zero rows where not found (d = 0 for an empty store)
        found : (n,) bool
        """
        ks = _as_keys(keys)
        self._refresh()
        rows = np.array([self._index.get(k, -1) for k in ks], dtype=np.int64)
        found = rows >= 0
        if self._vectors is None:
            return np.zeros((len(ks), 0), np.float32), found
        out = np.zeros((len(ks), self._vectors.shape[1]), self._vectors.dtype)
        out[found] = self._vectors[rows[found]]
        return out, found

    def put_many(self, keys: Sequence[bytes] | np.ndarray, vectors: np.ndarray) -> None:
        """Add (or overwrite) vectors (n, d) and rewrite the namespace file atomically."""
        ks = _as_keys(keys)
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or len(vectors) != len(ks):
            raise ValueError(f"put_many needs vectors of shape (n_keys={len(ks)}, d), got {vectors.shape}")
        if not ks:
            return
        self._refresh()  # merge with what another process may have written meanwhile
        if self._vectors is not None and (vectors.shape[1] != self._vectors.shape[1]
                                          or vectors.dtype != self._vectors.dtype):
            raise ValueError(f"{self} holds {self._vectors.dtype} vectors of width {self._vectors.shape[1]}, "
                             f"got {vectors.dtype} of width {vectors.shape[1]}; use another namespace")
        width = vectors.shape[1]
        old = self._vectors if self._vectors is not None else np.zeros((0, width), vectors.dtype)
        upd = old.copy()  # the loaded arrays may be read-only views of the file's bytes
        index = dict(self._index)
        last = {k: j for j, k in enumerate(ks)}  # a key given twice keeps its last vector
        extra = [k for k in last if k not in index]
        for k, j in last.items():
            if k in index:
                upd[index[k]] = vectors[j]
        for k in extra:
            index[k] = len(index)
        all_keys = list(self._index) + extra
        key_arr = np.frombuffer(b"".join(all_keys), dtype=np.uint8).reshape(len(all_keys), KEY_BYTES)
        vecs = np.concatenate([upd, vectors[[last[k] for k in extra]]], axis=0)
        self._write(key_arr, vecs)
        self._index, self._vectors = index, vecs
