"""Per-row content features for the fusion model: frozen modality vectors plus attribute codes.

:func:`item_content` turns a Dataset's items table into :class:`ContentFeatures`, aligned to dense
item indices 0..n-1:

* ``text``: every text column of an item joined as ``"title. description"``, one vector
  (``text_encoder``: ``minilm`` / ``hashed`` / ``auto`` / a local model folder, see
  :mod:`fusionrec.encoders.text`);
* ``image`` / ``audio``: decoded files, through a CNN trained here to predict ``behaviour`` when
  it is given (see :mod:`fusionrec.encoders.media`); a row without a usable file has
  ``present[m][row] = False`` and a zero vector. With several columns of one kind, the keys are
  ``"image:<column>"``;
* categorical / multi / numeric columns: codes and standardised numbers
  (:mod:`fusionrec.encoders.attributes`).

Expensive work (text encoding, image and audio decoding) goes through the content-hash cache
(:mod:`fusionrec.encoders.store`), so a second call with the same content encodes nothing.
The fitted encoders travel in ``ContentFeatures.encoders``: :func:`extend_items` encodes cold items
added later the same way, and :meth:`ContentFeatures.to_state` / :meth:`~ContentFeatures.save`
export everything as numpy arrays (safetensors) plus JSON; no pickle.

Examples
--------
>>> from fusionrec.data import synthetic
>>> ds = synthetic.generate(synthetic.SyntheticConfig(n_users=30, n_items=20, media=False))
>>> f = item_content(ds, text_encoder="hashed")
>>> f.n, f.vectors["text"].shape, sorted(f.categorical)
(20, (20, 512), ['genre'])
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from safetensors.numpy import load_file, save_file

from fusionrec.atomic import atomic_write_dir
from fusionrec.data.schema import Dataset
from fusionrec.encoders.attributes import ATTRIBUTE_KINDS, encode_attributes
from fusionrec.encoders.media import AlignConfig
from fusionrec.encoders.registry import media_encoder_class
from fusionrec.encoders.text import TextEncoder, encode_texts
from fusionrec.encoders.text import text_encoder as resolve_text_encoder
from fusionrec.errors import DataError

log = logging.getLogger(__name__)

FORMAT = "fusionrec-content-v1"
STATE_FILE = "content.safetensors"
META_FILE = "content.json"
VECTOR_KINDS = ("text", "image", "audio")
KINDS = (*VECTOR_KINDS, *ATTRIBUTE_KINDS)
ALIASES = {"attributes": ATTRIBUTE_KINDS}
TEXT_JOIN = ". "


@dataclass
class ContentFeatures:
    """Per-row (item or user) inputs for the fusion model, aligned to dense indices 0..n-1."""

    n: int
    vectors: dict[str, np.ndarray]  # modality -> (n, d) float32 frozen vectors, e.g. "text", "image", "audio"
    present: dict[str, np.ndarray]  # modality -> (n,) bool, False where the row has no usable input
    categorical: dict[str, np.ndarray]  # column -> (n,) int64 codes, 0 = missing/unknown, 1.. = values
    multi: dict[str, tuple[np.ndarray, np.ndarray]]  # column -> (indptr (n+1,), codes) CSR of int64 codes >= 1
    numeric: np.ndarray  # (n, k) float32 standardised numeric columns (missing -> 0)
    numeric_missing: np.ndarray  # (n, k) bool
    vocab: dict[str, list[str]]  # column -> values, code c is vocab[col][c-1]
    info: dict[str, object]  # encoder per modality, counts of missing/corrupt, cache hits, timings
    numeric_columns: list[str] = field(default_factory=list)  # the k columns of ``numeric``, in order
    numeric_stats: dict[str, list[float]] = field(default_factory=dict)  # column -> [mean, std, *edges] used
    sources: dict[str, list[str]] = field(default_factory=dict)  # modality -> the columns it was made from
    schema: dict[str, str] = field(default_factory=dict)  # {column: kind} that was encoded
    encoders: dict[str, Any] = field(default_factory=dict)  # modality -> fitted encoder (for extend_items)

    def __repr__(self) -> str:
        return (f"ContentFeatures(n={self.n}, vectors={self.dims}, categorical={list(self.categorical)}, "
                f"multi={list(self.multi)}, numeric={self.numeric_columns})")

    @property
    def dims(self) -> dict[str, int]:
        """Width of each modality's vectors, e.g. ``{"text": 384, "image": 64}``."""
        return {m: int(v.shape[1]) for m, v in self.vectors.items()}

    def cardinality(self, column: str) -> int:
        """Number of codes of a categorical / multi column, 0 (missing) included: an embedding table's size."""
        return len(self.vocab[column]) + 1

    # ------------------------------------------------------------------ combine
    def append(self, other: ContentFeatures) -> ContentFeatures:
        """These rows followed by ``other``'s (same vocabularies and modalities, e.g. from :func:`extend_items`)."""
        if other.vocab != self.vocab or other.numeric_columns != self.numeric_columns:
            raise ValueError("append needs features encoded with the same vocabularies and numeric columns; "
                             "make the new rows with extend_items(features, items)")
        if other.dims != self.dims:
            raise ValueError(f"append needs the same modalities and widths, got {other.dims} vs {self.dims}")
        multi = {}
        for c, (ip, codes) in self.multi.items():
            oip, ocodes = other.multi[c]
            multi[c] = (np.concatenate([ip, oip[1:] + ip[-1]]), np.concatenate([codes, ocodes]))
        return ContentFeatures(
            n=self.n + other.n,
            vectors={m: np.concatenate([v, other.vectors[m]]) for m, v in self.vectors.items()},
            present={m: np.concatenate([v, other.present[m]]) for m, v in self.present.items()},
            categorical={c: np.concatenate([v, other.categorical[c]]) for c, v in self.categorical.items()},
            multi=multi,
            numeric=np.concatenate([self.numeric, other.numeric]),
            numeric_missing=np.concatenate([self.numeric_missing, other.numeric_missing]),
            vocab=self.vocab, info={**self.info, "appended": other.info}, numeric_columns=self.numeric_columns,
            numeric_stats=self.numeric_stats, sources=self.sources, schema=self.schema, encoders=self.encoders)

    # ------------------------------------------------------------------ persistence
    def to_state(self, *, rows: bool = True) -> tuple[dict[str, np.ndarray], dict[str, object]]:
        """Everything as numpy arrays (for safetensors) and a JSON-able dict.

        ``rows=False`` keeps only what :func:`extend_items` needs (vocabularies, statistics, encoder
        weights), not the per-row arrays.
        """
        arrays: dict[str, np.ndarray] = {}
        if rows:
            for m, v in self.vectors.items():
                arrays[f"vectors.{m}"] = v
                arrays[f"present.{m}"] = self.present[m]
            for c, v in self.categorical.items():
                arrays[f"categorical.{c}"] = v
            for c, (ip, codes) in self.multi.items():
                arrays[f"multi.{c}.indptr"] = ip
                arrays[f"multi.{c}.codes"] = codes
            arrays["numeric"] = self.numeric
            arrays["numeric_missing"] = self.numeric_missing
        enc_meta: dict[str, object] = {}
        for m, enc in self.encoders.items():
            if m == "text":
                enc_meta[m] = {"kind": "text", "spec": enc.spec, "id": enc.id}
            else:
                a, meta = enc.to_state()
                arrays.update({f"encoder.{m}.{k}": v for k, v in a.items()})
                enc_meta[m] = {"kind": "media", **meta}
        meta = {"format": FORMAT, "n": self.n, "rows": rows, "modalities": list(self.vectors),
                "categorical": list(self.categorical), "multi": list(self.multi),
                "numeric_columns": self.numeric_columns, "numeric_stats": self.numeric_stats, "vocab": self.vocab,
                "sources": self.sources, "schema": self.schema, "encoders": enc_meta, "info": self.info}
        json.dumps(meta)  # fail here, not in save, when something is not JSON-able
        return {k: np.ascontiguousarray(v) for k, v in arrays.items()}, meta

    @classmethod
    def from_state(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> ContentFeatures:
        """Rebuild features (and their fitted encoders) from :meth:`to_state`'s output."""
        if meta.get("format") != FORMAT:
            raise DataError(f"not a content-features state: format {meta.get('format')!r}, expected {FORMAT!r}")
        encoders: dict[str, Any] = {}
        for m, em in meta["encoders"].items():
            if em["kind"] == "text":
                enc = resolve_text_encoder(em["spec"])
                if enc.id != em["id"]:
                    log.warning("text encoder %s now has id %s, saved features used %s: its vectors may differ",
                                em["spec"], enc.id, em["id"])
                encoders[m] = enc
            else:
                prefix = f"encoder.{m}."
                sub = {k[len(prefix):]: np.asarray(v) for k, v in arrays.items() if k.startswith(prefix)}
                encoders[m] = media_encoder_class(em["encoder"]).from_state(sub, em)
        n = int(meta["n"])
        rows = bool(meta.get("rows", True))
        k = len(meta["numeric_columns"])
        if rows:
            vectors = {m: np.asarray(arrays[f"vectors.{m}"]) for m in meta["modalities"]}
            present = {m: np.asarray(arrays[f"present.{m}"]) for m in meta["modalities"]}
            categorical = {c: np.asarray(arrays[f"categorical.{c}"]) for c in meta["categorical"]}
            multi = {c: (np.asarray(arrays[f"multi.{c}.indptr"]), np.asarray(arrays[f"multi.{c}.codes"]))
                     for c in meta["multi"]}
            numeric, missing = np.asarray(arrays["numeric"]), np.asarray(arrays["numeric_missing"])
        else:
            n = 0
            vectors, present, categorical, multi = {}, {}, {}, {}
            numeric, missing = np.zeros((0, k), np.float32), np.zeros((0, k), bool)
        return cls(n=n, vectors=vectors, present=present, categorical=categorical, multi=multi, numeric=numeric,
                   numeric_missing=missing, vocab={c: list(v) for c, v in meta["vocab"].items()},
                   info=dict(meta["info"]), numeric_columns=list(meta["numeric_columns"]),
                   numeric_stats={c: list(v) for c, v in meta["numeric_stats"].items()},
                   sources={m: list(v) for m, v in meta["sources"].items()}, schema=dict(meta["schema"]),
                   encoders=encoders)

    def save(self, path: str | Path, *, rows: bool = True) -> Path:
        """Write ``path/content.safetensors`` + ``path/content.json`` atomically; returns ``path``."""
        arrays, meta = self.to_state(rows=rows)

        def fill(tmp: Path) -> None:
            save_file(arrays, str(tmp / STATE_FILE))
            (tmp / META_FILE).write_text(json.dumps(meta, indent=1))

        return atomic_write_dir(Path(path), fill)

    @classmethod
    def load(cls, path: str | Path) -> ContentFeatures:
        """Read what :meth:`save` wrote."""
        path = Path(path)
        for f in (STATE_FILE, META_FILE):
            if not (path / f).is_file():
                raise DataError(f"{path / f} not found: {path} is not a saved ContentFeatures directory")
        return cls.from_state(load_file(str(path / STATE_FILE)), json.loads((path / META_FILE).read_text()))


# ---------------------------------------------------------------------------------------- helpers
def _wanted(modalities: Iterable[str] | None, schema: Mapping[str, str]) -> set[str]:
    if modalities is None:
        return set(KINDS)
    if isinstance(modalities, str):
        modalities = [modalities]
    out: set[str] = set()
    for m in modalities:
        if m in ALIASES:
            out.update(ALIASES[m])
        elif m in KINDS:
            if m not in schema.values():
                have: dict[str, list[str]] = {}
                for c, k in schema.items():
                    have.setdefault(k, []).append(c)
                raise DataError(f"modality {m!r} was asked for but the table has no {m} column; its columns by "
                                f"kind: {have}. Declare the column's kind in the schema or drop {m!r}.")
            out.add(m)
        else:
            raise ValueError(f"unknown modality {m!r}; known: {', '.join([*KINDS, *ALIASES])}")
    return out


def _vector_keys(schema: Mapping[str, str], wanted: set[str]) -> dict[str, tuple[str, list[str]]]:
    """modality key -> (kind, source columns): one "text" for all text columns, one key per media column."""
    out: dict[str, tuple[str, list[str]]] = {}
    text_cols = [c for c, k in schema.items() if k == "text"]
    if "text" in wanted and text_cols:
        out["text"] = ("text", text_cols)
    for kind in ("image", "audio"):
        cols = [c for c, k in schema.items() if k == kind]
        if kind in wanted:
            for c in cols:
                out[kind if len(cols) == 1 else f"{kind}:{c}"] = (kind, [c])
    return out


def _join_text(frame: pd.DataFrame | None, cols: list[str], n: int) -> list[str]:
    if frame is None:
        return [""] * n
    parts = []
    for c in cols:
        if c in frame.columns:
            s = frame[c]
            parts.append(s.where(s.notna(), "").astype(str).str.strip().tolist())
    return [TEXT_JOIN.join(p for p in row if p) for row in zip(*parts, strict=True)] if parts else [""] * n


def _check_columns(frame: pd.DataFrame | None, schema: Mapping[str, str], what: str) -> None:
    if frame is None:
        return
    absent = [c for c in schema if c not in frame.columns]
    if absent:
        log.warning("%s lack column(s) %s of the schema; those values count as missing", what, absent)


def _encode(frame: pd.DataFrame | None, n: int, schema: dict[str, str], wanted: set[str], *,
            text: TextEncoder | None, media: dict[str, Any], fit: bool, behaviour: np.ndarray | None,
            vocab: Mapping[str, list[str]] | None, numeric_stats: Mapping[str, list[float]] | None,
            cache_dir: str | Path | None, progress: bool, what: str) -> ContentFeatures:
    """The encoding shared by item_content (``fit=True``) and extend_items (fitted encoders)."""
    t_all = time.perf_counter()
    info: dict[str, Any] = {"rows": n, "missing": {}, "corrupt": {}, "reports": {}, "seconds": {}}
    vectors: dict[str, np.ndarray] = {}
    present: dict[str, np.ndarray] = {}
    encoders: dict[str, Any] = {}
    sources: dict[str, list[str]] = {}
    for key, (kind, cols) in _vector_keys(schema, wanted).items():
        t0 = time.perf_counter()
        sources[key] = cols
        if kind == "text":
            assert text is not None
            texts = _join_text(frame, cols, n)
            vec, pres, counts = encode_texts(text, texts, cache_dir=cache_dir, progress=progress)
            encoders[key] = text
            info[key] = text.name
            info["reports"][key] = counts
            log.info("%s %s: %d rows, %d encoded with %s, %d from the cache, %d empty (%.1f s)", what, key, n,
                     counts["encoded"], text.name, counts["cached"], counts["empty"], time.perf_counter() - t0)
        else:
            enc = media[key]
            paths = frame[cols[0]].tolist() if frame is not None and cols[0] in frame.columns else [None] * n
            batch = enc.load(paths, cache_dir=cache_dir, progress=progress)
            pres = batch.present
            if fit:
                targets = None if behaviour is None else behaviour[pres]
                enc.fit(batch.inputs, targets)
            out = enc.encode(batch.inputs)  # (m, d)
            vec = np.zeros((n, out.shape[1]), np.float32)
            vec[pres] = out
            encoders[key] = enc
            info[key] = enc.describe
            report = batch.report()
            if fit:
                report["fit"] = enc.report_
            info["reports"][key] = report
            info["corrupt"][key] = len(batch.corrupt)
            log.info("%s %s: %d of %d rows have a usable file (%d decoded, %d from the cache); %s (%.1f s)",
                     what, key, int(pres.sum()), n, batch.decoded, batch.cached, enc.describe,
                     time.perf_counter() - t0)
        vectors[key] = vec
        present[key] = pres
        info["missing"][key] = int((~pres).sum())
        info["seconds"][key] = round(time.perf_counter() - t0, 2)
    attr_schema = {c: k for c, k in schema.items() if k in ATTRIBUTE_KINDS and k in wanted}
    attrs = encode_attributes(frame, attr_schema, n=n, vocab=vocab, numeric_stats=numeric_stats)
    info["attributes"] = attrs.counts
    info["seconds"]["total"] = round(time.perf_counter() - t_all, 2)
    source_cols = {c for cols in sources.values() for c in cols}
    used = {c: k for c, k in schema.items() if c in attr_schema or c in source_cols}
    return ContentFeatures(n=n, vectors=vectors, present=present, categorical=attrs.categorical, multi=attrs.multi,
                           numeric=attrs.numeric, numeric_missing=attrs.numeric_missing, vocab=attrs.vocab,
                           info=info, numeric_columns=attrs.numeric_columns, numeric_stats=attrs.numeric_stats,
                           sources=sources, schema=used, encoders=encoders)


# ---------------------------------------------------------------------------------------- API
def item_content(dataset: Dataset, *, modalities: Iterable[str] | None = None,
                 text_encoder: str | TextEncoder = "auto", image_size: int = 32,
                 cache_dir: str | Path | None = None, behaviour: np.ndarray | None = None, seed: int = 0,
                 progress: bool = False, image_encoder: str = "cnn-image",
                 image_weights: str | Path | None = None, audio_encoder: str = "logmel-cnn-audio",
                 align: AlignConfig | None = None) -> ContentFeatures:
    """Encode every item's content, aligned to dense item indices.

    Parameters
    ----------
    dataset : its ``items`` table and ``item_schema`` are read
    modalities : kinds to encode (``text``, ``image``, ``audio``, ``categorical``, ``multi``,
        ``numeric``, or ``attributes`` for the last three); None = every kind the items have
    text_encoder : ``auto`` | ``minilm`` | ``hashed`` | a local sentence-transformers folder, or an
        encoder object (e.g. ``SentenceTextEncoder(path, threads=0)``)
    image_size : side of the square pixels fed to the image encoder
    cache_dir : embedding cache root (default ``$FUSIONREC_CACHE`` or ``~/.cache/fusionrec``)
    behaviour : (n_items, d) target vectors (e.g. item factors of a collaborative model; a zero row =
        no behaviour); the image / audio CNNs are trained to predict them, then encode every item
    seed : seeds CNN initialisation and training
    progress : rich progress bars for steps over more than 1000 rows
    image_encoder : ``cnn-image`` or ``torchvision-image`` (then ``image_weights`` = a local
        safetensors file of a torchvision ``resnet18``)
    audio_encoder : ``logmel-cnn-audio``
    align : training settings of the CNNs

    Returns
    -------
    ContentFeatures with ``n = dataset.n_items``

    Examples
    --------
    >>> f = item_content(ds, text_encoder="hashed", behaviour=als.item_factors_)  # doctest: +SKIP
    >>> f.vectors["image"].shape  # doctest: +SKIP
    (9742, 64)
    """
    n = dataset.n_items
    frame = dataset.items
    schema = dict(dataset.item_schema) if frame is not None else {}
    if frame is not None and len(frame) != n:
        raise DataError(f"items table has {len(frame)} rows for {n} items; build the dataset with "
                        f"Dataset.from_frames so side tables are indexed by item")
    if frame is not None:
        frame = frame.reset_index(drop=True)
    wanted = _wanted(modalities, schema)
    if behaviour is not None:
        behaviour = np.asarray(behaviour, dtype=np.float32)
        if behaviour.ndim != 2 or len(behaviour) != n:
            raise ValueError(f"behaviour must be an (n_items={n}, d) array of item vectors, got shape {behaviour.shape}")
        if not np.isfinite(behaviour).all():
            raise ValueError("behaviour holds NaN or infinite values; fill them (a zero row = no behaviour)")
    keys = _vector_keys(schema, wanted)
    text = resolve_text_encoder(text_encoder) if "text" in keys else None
    media: dict[str, Any] = {}
    for key, (kind, _) in keys.items():
        if kind == "image":
            cls = media_encoder_class(image_encoder, "image")
            if image_encoder == "torchvision-image":
                if image_weights is None:
                    raise ValueError("image_encoder='torchvision-image' needs image_weights=<a local .safetensors "
                                     "file of the backbone>")
                media[key] = cls(weights=image_weights, image_size=image_size, config=align, seed=seed)
            else:
                media[key] = cls(image_size=image_size, config=align, seed=seed)
        elif kind == "audio":
            media[key] = media_encoder_class(audio_encoder, "audio")(config=align, seed=seed)
    return _encode(frame, n, schema, wanted, text=text, media=media, fit=True, behaviour=behaviour, vocab=None,
                   numeric_stats=None, cache_dir=cache_dir, progress=progress, what="items")


def extend_items(features: ContentFeatures, items: pd.DataFrame, *, cache_dir: str | Path | None = None,
                 progress: bool = False) -> ContentFeatures:
    """Encode new (cold-start) item rows exactly as ``features`` were: same vocabularies, statistics, encoders.

    ``items`` has the dataset's item columns (an ``item`` id column is ignored); the result has
    ``n = len(items)`` rows in its order. Unseen categorical values get code 0.
    """
    if not isinstance(items, pd.DataFrame):
        raise TypeError(f"extend_items needs a pandas DataFrame of new items, got {type(items).__name__}")
    frame = items.reset_index(drop=True)
    _check_columns(frame, features.schema, "new items")
    kinds = set(features.schema.values())
    wanted = {k for k in KINDS if k in kinds}
    text = features.encoders.get("text")
    media = {k: v for k, v in features.encoders.items() if k != "text"}
    missing_enc = [k for k in _vector_keys(features.schema, wanted) if k not in features.encoders]
    if missing_enc:
        raise ValueError(f"features hold no fitted encoder for {missing_enc}; they were saved without them")
    return _encode(frame, len(frame), dict(features.schema), wanted, text=text, media=media, fit=False,
                   behaviour=None, vocab=features.vocab, numeric_stats=features.numeric_stats,
                   cache_dir=cache_dir, progress=progress, what="new items")


def user_content(dataset: Dataset, *, vocab: dict[str, list[str]] | None = None,
                 numeric_stats: dict[str, list[float]] | None = None) -> ContentFeatures:
    """Encode user profile fields (categorical / multi / numeric), aligned to dense user indices.

    Text, image and audio profile columns are skipped (logged). ``vocab`` / ``numeric_stats``
    (from earlier features) are reused: unseen values get code 0.
    """
    n = dataset.n_users
    frame = dataset.users
    schema = dict(dataset.user_schema) if frame is not None else {}
    skipped = [c for c, k in schema.items() if k not in ATTRIBUTE_KINDS]
    if skipped:
        log.info("user_content encodes profile attributes only; skipping %s", skipped)
    if frame is not None:
        if len(frame) != n:
            raise DataError(f"users table has {len(frame)} rows for {n} users; build the dataset with "
                            f"Dataset.from_frames so side tables are indexed by user")
        frame = frame.reset_index(drop=True)
    return _encode(frame, n, schema, set(ATTRIBUTE_KINDS), text=None, media={}, fit=True, behaviour=None,
                   vocab=vocab, numeric_stats=numeric_stats, cache_dir=None, progress=False, what="users")


__all__ = ["ContentFeatures", "extend_items", "item_content", "user_content"]
