"""A synthetic multimodal world with known ground truth: the built-in default dataset.

Every item has four groups of latent factors, and each group is *observable* only through its
own source, so a test can prove that a model uses a modality:

=========  ================================================================================
group      how the factors show in the data
=========  ================================================================================
``text``   attribute words in ``title`` / ``description``. Factor ``k`` is an axis (mood,
           energy, era, ...) with its own vocabulary; the level of the factor (-2..2) picks
           the pole and the word's strength (``bleak`` < ``moody`` < none < ``cheerful`` <
           ``joyous``). The factor value is that level, so the words determine it exactly.
``image``  an RGB picture (``image`` column): shape hue, brightness, kind
           (circle / square / triangle), size and background lightness; one factor each.
``audio``  a short mono tone (``audio`` column): pitch, decay (sustained to percussive),
           loudness and timbre (weight of the 2nd/3rd harmonics); one factor each.
``attrs``  ``genre`` (categorical), ``tags`` (multi) and ``price`` (numeric): the factors
           are ``(genre_vec[genre] + sum(tag_vec[tags]) / sqrt(n_tags) + log_price * price_vec) / sqrt(3)``.
=========  ================================================================================

Items are grouped by creators (``artist``) whose latent style they share (``creator_share``).
Users have a preference vector per group, correlated with their ``region`` and ``age``, drifting
linearly over time; friends are sampled with probability increasing in preference similarity.

**Choice model.** At time fraction ``t`` (0 = start, 1 = end of the time span), user ``u``'s
utility for item ``i`` is ::

    U(u, i, t) = sum_{g in signal} w_g * (p_u^g + t * drift_u^g) . q_i^g  +  b_i  +  noise * eps_ui
    w_g = affinity / sqrt(dim_g * len(signal)),   eps_ui ~ Gumbel(0, 1) i.i.d.

and a user's events are split into ``drift_segments`` consecutive segments; in each, the user
consumes the highest-utility items not consumed before (Gumbel-top-k, i.e. sampling without
replacement from ``softmax(U / noise)``), in random order. The sampler is exact, yet it draws
noise for only a few hundred items per user: those that could still be chosen (see
:func:`_choose`), so a 100k x 100k world takes minutes and memory bounded by the user batch.
Ratings (1-5) cut ``zscore_i(affinity) + user_bias + rating_noise * N(0, 1)`` at fixed
quantiles (6/11/27/34/22 %, as in MovieLens).

``config.signal`` picks the groups that enter the utility: ``signal=("image",)`` makes a world
where only the picture matters. :func:`true_utility` recomputes the deterministic part of
``U`` from ``dataset.meta["truth"]``, whose arrays (dense-index order) are:

``item_<g>`` (n_items, dim_g) and ``user_<g>``, ``user_drift_<g>`` (n_users, dim_g) for each
group ``g`` (``user_drift_<g>`` is the change over the whole span); ``signal_weights`` (4,) the ``w_g`` (0 outside the signal); ``item_popularity``;
``item_artist``, ``item_genre``, ``item_tags`` (multi-hot), ``item_price``, ``item_image_props``,
``item_audio_props`` (property positions in [0, 1]), ``item_text_levels``; ``genre_vectors``, ``tag_vectors``,
``price_vector``; ``user_age``, ``user_region``, ``user_rating_bias``; and ``config`` (a dict).

Examples
--------
>>> ds = generate(SyntheticConfig(n_users=50, n_items=40, media=False))
>>> ds.name, ds.n_users, ds.n_items
('synthetic', 50, 40)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import queue
import struct
import tempfile
import time
import uuid
import wave
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import ndtr

from fusionrec.atomic import atomic_write_dir
from fusionrec.data.schema import Dataset
from fusionrec.errors import ConfigError, DataError

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

GROUPS: tuple[str, ...] = ("text", "image", "audio", "attrs")

# One axis per text factor: (strong negative, mild negative, mild positive, strong positive) words.
TEXT_AXES: tuple[tuple[tuple[str, ...], ...], ...] = (
    (("bleak", "grim"), ("moody", "somber"), ("cheerful", "sunny"), ("joyous", "euphoric")),
    (("serene", "tranquil"), ("calm", "gentle"), ("lively", "upbeat"), ("frantic", "explosive")),
    (("ancient", "archaic"), ("vintage", "retro"), ("modern", "fresh"), ("futuristic", "visionary")),
    (("minimal", "bare"), ("simple", "plain"), ("intricate", "layered"), ("labyrinthine", "baroque")),
    (("tiny", "private"), ("intimate", "cozy"), ("grand", "sweeping"), ("epic", "colossal")),
    (("solemn", "austere"), ("serious", "earnest"), ("playful", "witty"), ("zany", "absurd")),
    (("documentary", "gritty"), ("realistic", "grounded"), ("dreamy", "whimsical"), ("surreal", "mythic")),
    (("glacial", "meditative"), ("slow", "patient"), ("brisk", "quick"), ("breakneck", "relentless")),
)
NOUNS: tuple[str, ...] = ("harbor", "journey", "echo", "garden", "signal", "river", "lantern", "season",
                          "voyage", "window", "mirror", "horizon", "meadow", "city", "letter", "engine",
                          "forest", "island", "bridge", "comet")
IMAGE_PROPS: tuple[str, ...] = ("hue", "brightness", "shape", "size", "background")
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
AUDIO_PROPS: tuple[str, ...] = ("pitch", "decay", "loudness", "timbre")
GENRES: tuple[str, ...] = ("rock", "jazz", "classical", "electronic", "folk", "hiphop", "ambient", "metal",
                           "pop", "soul", "reggae", "blues")
TAGS: tuple[str, ...] = ("acoustic", "catchy", "chill", "cinematic", "dance", "groovy", "instrumental", "live",
                         "lofi", "melodic", "piano", "remix", "synth", "vocal", "workout", "summer", "night",
                         "roadtrip", "study", "party", "rainy", "guitar", "orchestral", "anthem")
REGIONS: tuple[str, ...] = ("north", "south", "east", "west", "central", "coast", "highlands", "islands")
MAX_DIMS: dict[str, int] = {"text": len(TEXT_AXES), "image": len(IMAGE_PROPS), "audio": len(AUDIO_PROPS),
                            "attrs": 64}
ITEM_SCHEMA: dict[str, str] = {"title": "text", "description": "text", "genre": "categorical", "tags": "multi",
                               "price": "numeric", "image": "image", "audio": "audio"}
USER_SCHEMA: dict[str, str] = {"age": "numeric", "region": "categorical"}

_TEXT_CUTS = np.array([-1.0364334, -0.3853205, 0.3853205, 1.0364334])  # N(0,1) quantiles .15 .35 .65 .85
_TEXT_SCALE = math.sqrt(1.6)  # std of the levels -2..2 with those probabilities
_RATING_SHARES = np.array([0.06, 0.17, 0.44, 0.78])  # cumulative shares of ratings 1..4 (MovieLens-like)
_SQRT12 = math.sqrt(12.0)
_BUDGET = 1 << 23  # elements of the largest (users x items) block held at once
_BLOCK = 16  # items per block of the choice sampler
_DENSE = 0.5  # blocks expecting more than _BLOCK * _DENSE Poisson points are revealed in full
_STAGES = 4  # threshold levels tried before the last, -inf (reveal everything)
_SAMPLE = 1024  # items that estimate the softmax mass outside the top blocks
_MAX_BATCH = 4096  # users per batch
_WORKERS = 2  # threads simulating batches at once (numpy releases the GIL in its array loops)
_STREAMS = {"items": 1, "users": 2, "social": 3, "time": 4, "events": 5, "media": 6}


# ---------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class SyntheticConfig:
    """The synthetic world's size, structure and noise.

    Parameters
    ----------
    n_users, n_items
        World size.
    seed
        Everything is a deterministic function of the config; same seed, same frames.
    text_dim, image_dim, audio_dim, attr_dim
        Factors per group (at most 8 text axes, 5 image and 4 audio properties, 64 attrs).
    signal
        The groups whose factors enter the utility; e.g. ``("image",)`` for an image-only world.
    mean_events, min_events, max_events
        Events per user: ``min_events`` plus a negative binomial, mean ``mean_events``, capped.
    affinity
        Scale of the user-item preference term of the utility.
    popularity
        Std of the per-item popularity bias ``b_i`` (log-normal popularity).
    noise
        Scale of the Gumbel noise; lower means more deterministic choices.
    drift
        Std of each preference's linear change over the whole time span.
    drift_segments
        Segments of a user's sequence that share one utility (finer means smoother drift).
    homophily
        Friend logits are ``homophily * cosine(preferences)``; 0 gives a random graph.
    n_friends
        Friends each user picks (edges are mutual, so degrees average about twice this).
    profile_strength
        Share of preference variance explained by ``region`` and ``age`` (0 to <1).
    creator_share
        Correlation of an item's latent style with its artist's (0 to 1).
    items_per_artist
        Mean catalogue size of an artist.
    n_genres, n_tags, n_regions
        Vocabulary sizes (at most 12, 24 and 8).
    rating_noise
        Std of the noise added before ratings are cut into 1-5.
    media
        Write item images (PNG) and audio clips (WAV) and add ``image``/``audio`` columns.
    image_size
        Image side in pixels.
    audio_seconds, sample_rate
        Clip length and rate (16-bit mono).
    start_time
        Unix time of the start of the span.
    span_days
        Length of the time span.

    Examples
    --------
    >>> SyntheticConfig(n_users=100, signal=("image",)).signal
    ('image',)
    """

    n_users: int = 500
    n_items: int = 300
    seed: int = 0
    text_dim: int = 4
    image_dim: int = 4
    audio_dim: int = 4
    attr_dim: int = 4
    signal: tuple[str, ...] = GROUPS
    mean_events: float = 30.0
    min_events: int = 5
    max_events: int = 500
    affinity: float = 2.0
    popularity: float = 1.0
    noise: float = 1.0
    drift: float = 0.5
    drift_segments: int = 4
    homophily: float = 4.0
    n_friends: int = 5
    profile_strength: float = 0.5
    creator_share: float = 0.5
    items_per_artist: float = 5.0
    n_genres: int = 8
    n_tags: int = 16
    n_regions: int = 6
    rating_noise: float = 0.5
    media: bool = True
    image_size: int = 32
    audio_seconds: float = 0.5
    sample_rate: int = 8000
    start_time: int = 1_577_836_800  # 2020-01-01
    span_days: float = 730.0

    def __post_init__(self) -> None:
        sig = (self.signal,) if isinstance(self.signal, str) else tuple(self.signal)
        object.__setattr__(self, "signal", sig)
        unknown = [g for g in sig if g not in GROUPS]
        if not sig or unknown or len(set(sig)) != len(sig):
            raise ConfigError(f"SyntheticConfig.signal must be a non-empty tuple of distinct groups from "
                              f"{list(GROUPS)}, got {self.signal!r}")
        ints: dict[str, tuple[int, int | None]] = {
            "n_users": (2, None), "n_items": (2, None), "seed": (0, None), "min_events": (1, None),
            "max_events": (1, None), "drift_segments": (1, 64), "n_friends": (0, 256),
            "text_dim": (1, MAX_DIMS["text"]), "image_dim": (1, MAX_DIMS["image"]),
            "audio_dim": (1, MAX_DIMS["audio"]), "attr_dim": (1, MAX_DIMS["attrs"]),
            "n_genres": (1, len(GENRES)), "n_tags": (1, len(TAGS)), "n_regions": (1, len(REGIONS)),
            "image_size": (8, 512), "sample_rate": (8000, 96000), "start_time": (0, None),
        }
        for name, (lo, hi) in ints.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | np.integer):
                raise ConfigError(f"SyntheticConfig.{name} must be an integer, got {v!r}")
            if v < lo or (hi is not None and v > hi):
                rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
                raise ConfigError(f"SyntheticConfig.{name} must be {rng}, got {v}")
        floats: dict[str, tuple[float, float | None, bool]] = {  # (low, high, low is exclusive)
            "mean_events": (0.0, None, True), "affinity": (0.0, None, False), "popularity": (0.0, None, False),
            "noise": (0.0, None, True), "drift": (0.0, None, False), "homophily": (0.0, None, False),
            "profile_strength": (0.0, 0.99, False), "creator_share": (0.0, 1.0, False),
            "items_per_artist": (1.0, None, False), "rating_noise": (0.0, None, False),
            "audio_seconds": (0.0, 60.0, True), "span_days": (0.0, None, True),
        }
        for name, (flo, fhi, open_lo) in floats.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating) or not math.isfinite(v):
                raise ConfigError(f"SyntheticConfig.{name} must be a finite number, got {v!r}")
            if (v <= flo if open_lo else v < flo) or (fhi is not None and v > fhi):
                rule = f"{'>' if open_lo else '>='} {flo}" + ("" if fhi is None else f" and <= {fhi}")
                raise ConfigError(f"SyntheticConfig.{name} must be {rule}, got {v}")
        if not isinstance(self.media, bool):
            raise ConfigError(f"SyntheticConfig.media must be True or False, got {self.media!r}")
        if self.min_events > self.n_items:
            raise ConfigError(f"SyntheticConfig.min_events ({self.min_events}) must be <= n_items "
                              f"({self.n_items}); lower min_events or add items")
        if self.mean_events < self.min_events:
            raise ConfigError(f"SyntheticConfig.mean_events must be >= min_events ({self.min_events}), "
                              f"got {self.mean_events}")
        if self.max_events < self.min_events:
            raise ConfigError(f"SyntheticConfig.max_events must be >= min_events ({self.min_events}), "
                              f"got {self.max_events}")
        if self.n_friends >= self.n_users:
            raise ConfigError(f"SyntheticConfig.n_friends must be < n_users ({self.n_users}), "
                              f"got {self.n_friends}")

    def dims(self) -> dict[str, int]:
        """Factors per group, e.g. ``{"text": 4, "image": 4, "audio": 4, "attrs": 4}``."""
        return {"text": self.text_dim, "image": self.image_dim, "audio": self.audio_dim, "attrs": self.attr_dim}

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-able values; ``SyntheticConfig(**cfg.to_dict())`` gives the config back."""
        d = dataclasses.asdict(self)
        d["signal"] = list(self.signal)
        return d


def _rng(seed: int, stream: str, *extra: int) -> np.random.Generator:
    """An independent generator per component, so changing one part leaves the others unchanged."""
    return np.random.default_rng([seed, _STREAMS[stream], *extra])


def _ids(prefix: str, n: int) -> np.ndarray:
    width = len(str(max(n - 1, 0)))
    return np.array([f"{prefix}{i:0{width}d}" for i in range(n)], dtype=object)


def _uniform_factor(u: np.ndarray) -> np.ndarray:
    """A property's position in [0, 1] as a zero-mean, unit-variance factor."""
    return ((u - 0.5) * _SQRT12).astype(np.float32)


def _signal_weights(cfg: SyntheticConfig) -> np.ndarray:
    dims = cfg.dims()
    return np.array([cfg.affinity / math.sqrt(dims[g] * len(cfg.signal)) if g in cfg.signal else 0.0
                     for g in GROUPS], dtype=np.float64)


# ---------------------------------------------------------------------------------------- items
def _items(cfg: SyntheticConfig) -> dict[str, np.ndarray]:
    """Latent styles, observable properties and factors of every item."""
    rng = _rng(cfg.seed, "items")
    n, dims, rho = cfg.n_items, cfg.dims(), cfg.creator_share
    n_artists = max(1, round(n / cfg.items_per_artist))
    artist = rng.integers(0, n_artists, size=n)
    own = math.sqrt(1.0 - rho * rho)

    def latent(d: int) -> np.ndarray:  # (n, d) N(0, 1), correlated within an artist
        return rho * rng.standard_normal((n_artists, d))[artist] + own * rng.standard_normal((n, d))

    out: dict[str, np.ndarray] = {"item_artist": artist.astype(np.int64)}
    # text: quantised levels -2..2 per axis
    levels = np.searchsorted(_TEXT_CUTS, latent(dims["text"])) - 2  # (n, text_dim) in -2..2
    out["item_text_levels"] = levels.astype(np.int8)
    out["item_text"] = (levels / _TEXT_SCALE).astype(np.float32)
    # image and audio: each used property's position in [0, 1]; unused ones sit at 0.5
    for group, props in (("image", IMAGE_PROPS), ("audio", AUDIO_PROPS)):
        pos = np.full((n, len(props)), 0.5)
        pos[:, : dims[group]] = ndtr(latent(dims[group]))
        factors = _uniform_factor(pos[:, : dims[group]])
        if group == "image":  # the shape is one of three kinds: snap its position to the kind
            kind = np.minimum((pos[:, 2] * 3).astype(np.int64), 2)
            pos[:, 2] = (kind + 0.5) / 3
            if dims["image"] > 2:
                factors[:, 2] = (kind - 1) * math.sqrt(1.5)
        out[f"item_{group}_props"] = pos.astype(np.float32)
        out[f"item_{group}"] = factors
    # attrs: genre, tags, price
    d = dims["attrs"]
    artist_genre = rng.integers(0, cfg.n_genres, size=n_artists)
    genre = np.where(rng.random(n) < rho, artist_genre[artist], rng.integers(0, cfg.n_genres, size=n))
    n_tags_item = rng.integers(1, min(3, cfg.n_tags) + 1, size=n)
    scores = rng.random((n, cfg.n_tags))
    signature = rng.integers(0, cfg.n_tags, size=n_artists)[artist]
    scores[np.arange(n), signature] += np.where(rng.random(n) < rho, 2.0, 0.0)
    rank = np.argsort(np.argsort(-scores, axis=1, kind="stable"), axis=1, kind="stable")
    tags = rank < n_tags_item[:, None]  # (n, n_tags) multi-hot
    log_price = latent(1)[:, 0]
    genre_vec = rng.standard_normal((cfg.n_genres, d))
    tag_vec = rng.standard_normal((cfg.n_tags, d))
    price_vec = rng.standard_normal(d)
    attrs = (genre_vec[genre] + (tags @ tag_vec) / np.sqrt(n_tags_item)[:, None]
             + log_price[:, None] * price_vec) / math.sqrt(3.0)
    out.update(item_attrs=attrs.astype(np.float32), item_genre=genre.astype(np.int64),
               item_tags=tags.astype(np.uint8), item_price=np.round(np.exp(2.3 + 0.7 * log_price), 2),
               genre_vectors=genre_vec.astype(np.float32), tag_vectors=tag_vec.astype(np.float32),
               price_vector=price_vec.astype(np.float32),
               item_popularity=(cfg.popularity * rng.standard_normal(n)).astype(np.float32))
    out["item_title"], out["item_description"] = _texts(levels, rng)
    return out


def _texts(levels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Titles and descriptions whose attribute words spell out the text factors' levels."""
    n, d = levels.shape
    pick = rng.integers(0, 2, size=(n, d))  # which synonym
    nouns = rng.integers(0, len(NOUNS), size=n)
    strongest = np.argmax(np.abs(levels) + rng.random((n, d)) * 0.1, axis=1)
    titles = np.empty(n, dtype=object)
    descs = np.empty(n, dtype=object)
    pole = {-2: 0, -1: 1, 1: 2, 2: 3}
    for i in range(n):
        row = levels[i]
        words = [TEXT_AXES[k][pole[int(row[k])]][pick[i, k]] for k in range(d) if row[k] != 0]
        noun = NOUNS[nouns[i]]
        k = int(strongest[i])
        lead = TEXT_AXES[k][pole[int(row[k])]][pick[i, k]].capitalize() + " " if row[k] != 0 else ""
        titles[i] = f"The {lead}{noun.capitalize()}"
        if not words:
            descs[i] = f"An ordinary {noun}."
        else:
            body = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
            descs[i] = f"{'An' if body[0] in 'aeiou' else 'A'} {body} {noun}."
    return titles, descs


# ---------------------------------------------------------------------------------------- users
def _users(cfg: SyntheticConfig) -> dict[str, np.ndarray]:
    """Profiles and preferences (base and drift per group) of every user."""
    rng = _rng(cfg.seed, "users")
    n, dims = cfg.n_users, cfg.dims()
    total = sum(dims.values())
    region = rng.integers(0, cfg.n_regions, size=n)
    age = np.clip(np.round(35 + 13 * rng.standard_normal(n)), 16, 80)
    z_age = (age - 35) / 13
    w_region, w_age = 0.6 * cfg.profile_strength, 0.4 * cfg.profile_strength
    centroids = rng.standard_normal((cfg.n_regions, total))
    age_dir = rng.standard_normal(total)
    pref = (math.sqrt(w_region) * centroids[region] + math.sqrt(w_age) * z_age[:, None] * age_dir
            + math.sqrt(1.0 - w_region - w_age) * rng.standard_normal((n, total)))
    drift = cfg.drift * rng.standard_normal((n, total))
    out: dict[str, np.ndarray] = {"user_age": age.astype(np.int64), "user_region": region.astype(np.int64),
                                  "user_rating_bias": (0.3 * rng.standard_normal(n)).astype(np.float32)}
    start = 0
    for g in GROUPS:
        out[f"user_{g}"] = pref[:, start:start + dims[g]].astype(np.float32)
        out[f"user_drift_{g}"] = drift[:, start:start + dims[g]].astype(np.float32)
        start += dims[g]
    return out


def _social(cfg: SyntheticConfig, truth: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mutual friend pairs ``(user, friend)``, sorted; P(friend) grows with preference cosine."""
    n, k = cfg.n_users, cfg.n_friends
    if k == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    rng = _rng(cfg.seed, "social")
    pref = np.concatenate([truth[f"user_{g}"] for g in GROUPS], axis=1).astype(np.float32)
    pref /= np.linalg.norm(pref, axis=1, keepdims=True) + 1e-12
    pool = n if n <= 2048 else 512
    batch = max(1, _BUDGET // (pool * 8))
    heads, tails = [], []
    for lo in range(0, n, batch):
        rows = np.arange(lo, min(n, lo + batch))
        if pool == n:
            cand = np.broadcast_to(np.arange(n), (len(rows), n))
            logits = cfg.homophily * (pref[rows] @ pref.T)
        else:
            cand = rng.integers(0, n, size=(len(rows), pool))
            logits = cfg.homophily * np.einsum("bd,bcd->bc", pref[rows], pref[cand])
        logits = logits + rng.gumbel(size=logits.shape)
        logits[cand == rows[:, None]] = -np.inf
        top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
        heads.append(np.repeat(rows, k))
        tails.append(np.take_along_axis(cand, top, axis=1).ravel())
    a, b = np.concatenate(heads), np.concatenate(tails)
    keys = np.unique(np.minimum(a, b) * n + np.maximum(a, b))
    lo_, hi_ = keys // n, keys % n
    order = np.lexsort((np.concatenate([hi_, lo_]), np.concatenate([lo_, hi_])))
    return np.concatenate([lo_, hi_])[order], np.concatenate([hi_, lo_])[order]


# ---------------------------------------------------------------------------------------- choices
def _values(Ulo: np.ndarray, Uhi: np.ndarray, row: np.ndarray, item: np.ndarray) -> tuple[np.ndarray, ...]:
    """Utilities at the first and last time, and their max ``V``, of (row, item) pairs (float64)."""
    flat = row * Ulo.shape[1] + item
    lo = np.take(Ulo.reshape(-1), flat).astype(np.float64)
    hi = lo if Uhi is Ulo else np.take(Uhi.reshape(-1), flat).astype(np.float64)
    return lo, hi, np.maximum(lo, hi)


class _Revealed:
    """The noise revealed so far, as ``E = exp(-G)`` per (row, item), plus fully revealed blocks."""

    def __init__(self, n_rows: int, n_blocks: int, n_pad: int) -> None:
        self.row, self.item, self.e = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0)]
        self.full = np.zeros((n_rows, n_blocks), dtype=bool)
        self.n_pad = n_pad

    def add(self, row: np.ndarray, item: np.ndarray, e: np.ndarray) -> None:
        self.row.append(row)
        self.item.append(item)
        self.e.append(e)

    def flat(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        row, item, e = (np.concatenate(x) for x in (self.row, self.item, self.e))
        self.row, self.item, self.e = [row], [item], [e]
        return row, item, e

    def unknown(self, row: np.ndarray, item: np.ndarray) -> np.ndarray:
        """Which of these (row, item) pairs have no revealed noise yet."""
        r, i, _ = self.flat()
        if len(r) == 0 or len(row) == 0:
            return np.ones(len(row), dtype=bool)
        known = np.sort(r * self.n_pad + i)
        query = row * self.n_pad + item
        return known[np.minimum(np.searchsorted(known, query), len(known) - 1)] != query


def _reveal(rng: np.random.Generator, Ulo: np.ndarray, Uhi: np.ndarray, bmax: np.ndarray, rev: _Revealed,
            rows: np.ndarray, x_lo: np.ndarray, x_hi: np.ndarray, noise: float) -> None:
    """Reveal the noise of every item of ``rows`` whose key ``V + noise * G`` is in ``[x_lo, x_hi)``.

    Items at or above ``x_hi`` were revealed before. With ``E = exp(-G) ~ Exp(1)``, the key
    reaches ``x`` iff ``E <= z(x) = exp((V - x) / noise)``: ``E`` is the first point of a unit
    Poisson process. Blocks whose bound ``z_j`` (from their largest ``V``) is large are revealed
    in full; elsewhere the process on ``[0, z_j]`` is sampled for the whole block at once
    (Poisson superposition) and only points in ``(z(x_hi), z(x_lo)]`` of its items are kept.
    """
    b, nb = _BLOCK, bmax.shape[1]
    bm = bmax if len(rows) == len(bmax) else bmax[rows]
    # float32 for speed, inflated by more than its rounding error so that it bounds every item's z
    slack = np.where(np.isfinite(x_lo), 1e-6 * (np.abs(x_lo) + np.abs(bm).max(axis=1)) / noise + 1e-5, 0.0)
    with np.errstate(over="ignore"):
        z_blk = np.exp((bm - x_lo.astype(np.float32)[:, None]) * np.float32(1.0 / noise))
        z_blk *= np.exp(slack).astype(np.float32)[:, None]
    if rev.full.any():
        z_blk[rev.full[rows]] = 0.0
    # dense blocks: draw E for every unrevealed item, given E > z(x_hi) (memoryless)
    dense = z_blk >= _DENSE
    if dense.any():
        dr, dj = np.nonzero(dense)
        z_blk[dense] = 0.0
        row = np.repeat(rows[dr], b)
        item = (np.arange(b)[None, :] * nb + dj[:, None]).ravel()
        new = rev.unknown(row, item)
        row, item = row[new], item[new]
        _, _, v = _values(Ulo, Uhi, row, item)
        with np.errstate(over="ignore"):
            z_hi = np.exp((v - x_hi[np.searchsorted(rows, row)]) / noise)
        rev.add(row, item, z_hi + rng.standard_exponential(len(row)))
        rev.full[rows[dr], dj] = True
    # sparse blocks: Poisson(b * z_j) points per block, each on a uniform item at a uniform time
    mass = z_blk.sum(axis=1, dtype=np.float64)
    n_pts = rng.poisson(b * mass)
    if n_pts.sum() == 0:
        return
    csum = np.cumsum(z_blk.reshape(-1), dtype=np.float64)
    start = np.zeros(len(rows))
    start[1:] = csum[np.arange(1, len(rows)) * nb - 1]
    r_loc = np.repeat(np.arange(len(rows)), n_pts)
    query = np.sort(start[r_loc] + rng.random(len(r_loc)) * mass[r_loc])  # sorted: cache-friendly
    flat = np.minimum(np.searchsorted(csum, query, side="right"), len(csum) - 1)
    r_loc, blk = flat // nb, flat % nb  # the row follows from the flat position
    t = rng.random(len(r_loc)) * z_blk.reshape(-1)[flat].astype(np.float64)
    row, item = rows[r_loc], rng.integers(0, b, size=len(r_loc)) * nb + blk
    _, _, v = _values(Ulo, Uhi, row, item)
    first_pass = bool(np.isinf(x_hi).all())  # nothing was revealed before, outside the dense blocks
    with np.errstate(over="ignore"):
        keep = t <= np.exp((v - x_lo[r_loc]) / noise)
        if not first_pass:
            keep &= t > np.exp((v - x_hi[r_loc]) / noise)
    row, item, t = row[keep], item[keep], t[keep]
    if not first_pass:
        keep = rev.unknown(row, item)
        row, item, t = row[keep], item[keep], t[keep]
    order = np.lexsort((t, item, row))  # an item's E is its first point
    row, item, t = row[order], item[order], t[order]
    first = np.ones(len(row), dtype=bool)
    first[1:] = (row[1:] != row[:-1]) | (item[1:] != item[:-1])
    rev.add(row[first], item[first], t[first])


def _first_threshold(Ulo: np.ndarray, Uhi: np.ndarray, bmax: np.ndarray, n_items: int, frac: np.ndarray,
                     cum: np.ndarray, noise: float) -> np.ndarray:
    """A key level that about ``2 R + 4 sqrt(R) + 16`` items reach at each segment's time, per row.

    At time ``t`` the expected count above ``x`` is about ``exp(-x / noise) * sum_i exp(U_i(t) /
    noise)``; the sum is exact over the top blocks and estimated from a sample of the others.
    The level is the lowest over the segments, so that it suffices for all of them.
    """
    B, nb = bmax.shape
    b, rows = _BLOCK, np.arange(B)[:, None]
    n_top = min(nb, 8)
    top = np.argpartition(-bmax, n_top - 1, axis=1)[:, :n_top] if n_top < nb else np.tile(np.arange(nb), (B, 1))
    item = (np.arange(b)[None, None, :] * nb + top[:, :, None]).reshape(B, -1)
    lo_t, hi_t, _ = _values(Ulo, Uhi, np.broadcast_to(rows, item.shape), item)
    in_top = np.zeros((B, nb), dtype=bool)
    in_top[rows, top] = True
    n_rest = n_items - (item < n_items).sum(axis=1)
    n_s = min(n_items, _SAMPLE)
    out = (~in_top[:, np.arange(n_s) % nb]).astype(np.float32)  # sample items outside the top blocks
    scale = n_rest / np.maximum(out.sum(axis=1), 1.0)
    lo_s, hi_s = Ulo[:, :n_s], Uhi[:, :n_s]
    span_s = None if Uhi is Ulo else hi_s - lo_s
    inv = np.float32(1.0 / noise)
    x = np.full(B, np.inf)
    for s in range(frac.shape[1]):
        f = frac[:, s:s + 1]
        u_t = lo_t + f * (hi_t - lo_t)
        u_s = lo_s if span_s is None else lo_s + f.astype(np.float32) * span_s
        c = np.maximum(u_t.max(axis=1), u_s.max(axis=1))  # every exp below is <= 1, one is 1
        mass = np.exp((u_t - c[:, None]) / noise).sum(axis=1)
        e_s = np.exp((u_s - c[:, None].astype(np.float32)) * inv)
        mass += np.einsum("bi,bi->b", e_s, out, dtype=np.float64) * scale
        target = 2.0 * cum[:, s] + 4.0 * np.sqrt(cum[:, s]) + 16.0
        x_s = c + noise * (np.log(mass) - np.log(target))
        x = np.where(cum[:, s] > (cum[:, s - 1] if s else 0), np.minimum(x, x_s), x)
    return x


def _choose(rng: np.random.Generator, Ulo: np.ndarray, Uhi: np.ndarray, n_items: int, frac: np.ndarray,
            seg_k: np.ndarray, noise: float) -> list[np.ndarray]:
    """Exact segment-wise Gumbel-top-k choices for a batch of users.

    Parameters
    ----------
    Ulo, Uhi
        Utilities (popularity included) at each user's first and last segment time; the
        utility in between is linear in time. Columns past ``n_items`` are padding (-1e30).
        Shape (B, N_pad), N_pad a multiple of the block size.
    frac
        Each segment's time as a fraction of the way from the first to the last. Shape (B, S).
    seg_k
        Choices per segment. Shape (B, S).
    noise
        Gumbel scale.

    Returns
    -------
    list of np.ndarray
        Per segment, chosen items (B, max_k_s) in random order, ``-1`` past a user's count.

    Notes
    -----
    In segment ``s`` a user takes the ``seg_k[s]`` items not taken before with the highest key
    ``U(t_s) + noise * G``; each lies among the top ``R_s`` (choices up to ``s``) keys of all
    items at ``t_s``. Since ``U(t_s) <= V = max(Ulo, Uhi)``, an item whose ``V + noise * G``
    is below ``x`` can be chosen only if fewer than ``R_s`` keys reach ``x`` at some ``t_s``.
    So noise is revealed only for items reaching ``x`` (:func:`_reveal`); where too few do,
    ``x`` is lowered (finally to -inf) and the items in between are revealed. The noise of the
    rest stays unknown but provably irrelevant: the choices equal a full Gumbel-top-k's.
    """
    B, n_pad = Ulo.shape
    b, nb = _BLOCK, n_pad // _BLOCK
    S = seg_k.shape[1]
    cum, live = np.cumsum(seg_k, axis=1), seg_k > 0
    # block j holds items j, j + nb, j + 2 nb, ...: the max is a reduction over contiguous rows
    bmax = Ulo.reshape(B, b, nb).max(axis=1)  # float32
    if Uhi is not Ulo:
        np.maximum(bmax, Uhi.reshape(B, b, nb).max(axis=1), out=bmax)
    x = _first_threshold(Ulo, Uhi, bmax, n_items, frac, cum, noise)
    x_hi = np.full(B, np.inf)
    rev = _Revealed(B, nb, n_pad)
    todo = np.arange(B)
    for stage in range(_STAGES):
        _reveal(rng, Ulo, Uhi, bmax, rev, todo, x[todo], x_hi[todo], noise)
        row, item, e = rev.flat()
        lo, hi, v = _values(Ulo, Uhi, row, item)
        g = -np.log(np.maximum(e, 1e-300))
        act = v + noise * g >= x[row]
        short = np.zeros(B, dtype=bool)
        for s in range(S):
            key = lo[act] + frac[row[act], s] * (hi[act] - lo[act]) + noise * g[act]
            n_above = np.bincount(row[act], weights=(key >= x[row[act]]).astype(np.float64), minlength=B)
            short |= live[:, s] & (n_above < cum[:, s])
        todo = np.flatnonzero(short)
        if len(todo) == 0:
            break
        if stage == _STAGES - 1:  # a broken invariant, not bad input
            raise RuntimeError("synthetic: the choice sampler revealed every item and still fell short; "
                               "please report this bug")
        x_hi[todo] = x[todo]
        if stage == _STAGES - 2:
            x[todo] = -np.inf
        else:  # a step in the Gumbel tail, or down to where enough blocks have a larger max (low noise)
            k_tot = cum[todo, -1]
            rank = int(min(nb, (2.0 * k_tot + 4.0 * np.sqrt(k_tot) + 16.0).max()))
            level = -np.partition(-bmax[todo], rank - 1, axis=1)[:, rank - 1].astype(np.float64)
            x[todo] = np.minimum(x[todo] - noise * math.log(8.0), level - noise)
    # lay the items that reach x out per row and take each segment's top keys
    row, item, lo, hi, g = row[act], item[act], lo[act], hi[act], g[act]
    order = np.argsort(row, kind="stable")
    row, item, lo, hi, g = row[order], item[order], lo[order], hi[order], g[order]
    counts = np.bincount(row, minlength=B)
    slot = np.arange(len(row)) - np.repeat(np.cumsum(counts) - counts, counts)
    width = int(counts.max())
    items = np.full((B, width), -1, dtype=np.int64)
    P_lo, P_hi, P_g = np.zeros((B, width)), np.zeros((B, width)), np.zeros((B, width))
    items[row, slot], P_lo[row, slot], P_hi[row, slot], P_g[row, slot] = item, lo, hi, g
    chosen = items < 0
    picks: list[np.ndarray] = []
    for s in range(S):
        ks = seg_k[:, s]
        kmax = int(ks.max())
        key = P_lo + frac[:, s:s + 1] * (P_hi - P_lo) + noise * P_g
        key[chosen] = -np.inf
        top = np.argsort(-key, axis=1, kind="stable")[:, :kmax]
        ok = np.arange(kmax)[None, :] < ks[:, None]
        chosen[np.nonzero(ok)[0], top[ok]] = True
        got = np.where(ok, np.take_along_axis(items, top, axis=1), -1)
        shuffle = np.where(ok, rng.random(ok.shape), 2.0)
        picks.append(np.take_along_axis(got, np.argsort(shuffle, axis=1), axis=1))
    return picks


def _events(cfg: SyntheticConfig, truth: Mapping[str, np.ndarray],
            progress: Progress | None, total_steps: int) -> dict[str, np.ndarray]:
    """Every user's time-ordered events: user, item, timestamp and rating."""
    n_users, n_items = cfg.n_users, cfg.n_items
    rng = _rng(cfg.seed, "time")
    extra_mean = cfg.mean_events - cfg.min_events
    if extra_mean > 0:
        k = cfg.min_events + rng.negative_binomial(2, 2.0 / (2.0 + extra_mean), size=n_users)
    else:
        k = np.full(n_users, cfg.min_events)
    k = np.minimum(k, min(cfg.max_events, n_items)).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(k)])
    n_ev = int(offsets[-1])
    ev_user = np.repeat(np.arange(n_users), k)
    # times: sorted uniforms inside each user's active window, via normalised exponential spacings
    start = 0.7 * rng.random(n_users)
    end = start + (1.0 - start) * (0.2 + 0.8 * rng.random(n_users))
    # user u's k+1 spacings sit at gap indices offsets[u] + u + (0..k); event j sits at offsets[u] + u + j
    csum = np.cumsum(rng.standard_exponential(n_ev + n_users))
    block = offsets[:-1] + np.arange(n_users)
    base = np.concatenate([[0.0], csum])[block]
    totals = csum[block + k] - base
    within = csum[np.arange(n_ev) + ev_user] - base[ev_user]
    ev_t = start[ev_user] + (end - start)[ev_user] * within / totals[ev_user]
    span = cfg.span_days * 86400.0
    ev_pos = np.arange(n_ev) - np.repeat(offsets[:-1], k)
    ev_ts = cfg.start_time + np.floor(ev_t * span).astype(np.int64) + ev_pos
    # segments of each user's sequence and their mean times
    S = cfg.drift_segments if cfg.drift > 0 else 1
    ev_seg = (ev_pos * S) // np.repeat(k, k)
    seg_key = ev_user * S + ev_seg
    seg_k = np.bincount(seg_key, minlength=n_users * S).reshape(n_users, S)
    seg_sum = np.bincount(seg_key, weights=ev_t, minlength=n_users * S).reshape(n_users, S)
    seg_t = np.where(seg_k > 0, seg_sum / np.maximum(seg_k, 1), (start + end)[:, None] / 2)
    seg_off = np.cumsum(seg_k, axis=1) - seg_k
    t_lo = np.where(seg_k > 0, seg_t, np.inf).min(axis=1)
    t_hi = np.where(seg_k > 0, seg_t, -np.inf).max(axis=1)
    spread = t_hi - t_lo
    frac = np.where(spread[:, None] > 0, (seg_t - t_lo[:, None]) / np.where(spread > 0, spread, 1.0)[:, None], 0.0)

    w = _signal_weights(cfg)
    dims = cfg.dims()
    used = [i for i, g in enumerate(GROUPS) if g in cfg.signal]
    Q = np.concatenate([truth[f"item_{GROUPS[i]}"] for i in used], axis=1).astype(np.float32)
    Pw = np.concatenate([np.repeat(w[i], dims[GROUPS[i]]) for i in used]).astype(np.float32)
    P = np.concatenate([truth[f"user_{GROUPS[i]}"] for i in used], axis=1) * Pw
    Dr = np.concatenate([truth[f"user_drift_{GROUPS[i]}"] for i in used], axis=1) * Pw
    q_mean, q_cov = Q.mean(axis=0).astype(np.float64), np.cov(Q.T.astype(np.float64)).reshape(Q.shape[1], -1)
    # popularity rides as a last factor with user weight 1; padding items get -1e30 and are never chosen
    n_pad = -(-n_items // _BLOCK) * _BLOCK
    Qb = np.zeros((n_pad, Q.shape[1] + 1), dtype=np.float32)
    Qb[:n_items, :-1], Qb[:n_items, -1], Qb[n_items:, -1] = Q, truth["item_popularity"], -1e30
    QbT = np.ascontiguousarray(Qb.T)

    ev_item = np.full(n_ev, -1, dtype=np.int64)
    latent = np.empty(n_ev, dtype=np.float64)
    batch = max(1, min(n_users, _MAX_BATCH, _BUDGET // n_pad))
    n_batches = -(-n_users // batch)
    workers = max(1, min(_WORKERS, os.cpu_count() or 1, n_batches))
    buffers: queue.SimpleQueue[tuple[np.ndarray, np.ndarray]] = queue.SimpleQueue()
    for _ in range(workers):
        buf_lo = np.empty((batch, n_pad), dtype=np.float32)
        buffers.put((buf_lo, np.empty((batch, n_pad), dtype=np.float32) if S > 1 else buf_lo))

    def simulate(b: int) -> int:
        """Choices and rating latents of batch ``b``, written to disjoint slices; returns its last user."""
        lo, hi = b * batch, min(n_users, (b + 1) * batch)
        users = np.arange(lo, hi)
        buf_lo, buf_hi = buffers.get()
        try:
            Ulo, Uhi = buf_lo[: len(users)], buf_hi[: len(users)]
            for t_end, out in ((t_lo, Ulo), (t_hi, Uhi))[: 1 + (S > 1)]:
                pref = (P[users] + t_end[users, None] * Dr[users]).astype(np.float32)
                ones = np.ones((len(users), 1), dtype=np.float32)
                np.matmul(np.concatenate([pref, ones], axis=1), QbT, out=out)  # (B, n_pad), float32 BLAS
            picks = _choose(_rng(cfg.seed, "events", b), Ulo, Uhi, n_items, frac[users], seg_k[users], cfg.noise)
        finally:
            buffers.put((buf_lo, buf_hi))
        for s, items in enumerate(picks):
            r, c = np.nonzero(items >= 0)
            ev_item[offsets[users[r]] + seg_off[users[r], s] + c] = items[r, c]
        # rating latent: the chosen item's affinity z-score at the event's time
        e_lo, e_hi = offsets[lo], offsets[hi]
        eu, ei = ev_user[e_lo:e_hi], ev_item[e_lo:e_hi]
        p_t = P[eu].astype(np.float64) + ev_t[e_lo:e_hi, None] * Dr[eu]
        aff = np.einsum("ed,ed->e", p_t, Q[ei].astype(np.float64))
        sd = np.sqrt(np.maximum(np.einsum("ed,dk,ek->e", p_t, q_cov, p_t), 1e-12))
        latent[e_lo:e_hi] = (aff - p_t @ q_mean) / sd
        return hi

    # batches are independent (own random stream, disjoint outputs): threads overlap numpy's GIL-free work
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for hi in pool.map(simulate, range(n_batches)):
            if progress is not None:
                progress(hi, total_steps)
    if (ev_item < 0).any():  # a broken invariant, not bad input
        raise RuntimeError("synthetic: some events got no item; please report this bug")
    latent += truth["user_rating_bias"][ev_user] + cfg.rating_noise * rng.standard_normal(n_ev)
    cuts = np.quantile(latent, _RATING_SHARES)
    rating = (1 + np.searchsorted(cuts, latent)).astype(np.int64)
    return {"user": ev_user, "item": ev_item, "timestamp": ev_ts, "rating": rating}


# ---------------------------------------------------------------------------------------- media
def _write_png(path: Path, rgb: np.ndarray) -> None:
    """Write an 8-bit RGB image (H, W, 3) as a PNG, with zlib and struct only."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"_write_png needs an (H, W, 3) uint8 array, got shape {rgb.shape}")
    h, w, _ = rgb.shape
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rgb.reshape(h, w * 3)], axis=1).tobytes()

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
    _atomic_bytes(path, png)


def _write_wav(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write mono samples in [-1, 1] as a 16-bit PCM WAV file."""
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    with wave.open(str(tmp), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(sample_rate)
        f.writeframes(pcm)
    os.replace(tmp, path)


def _atomic_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV to RGB, all in [0, 1]; returns (..., 3)."""
    i = np.floor(h * 6) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = np.zeros((*np.shape(h), 3))
    for k, (r, g, b) in enumerate(table):
        m = i == k
        out[m] = np.stack([r[m], g[m], b[m]], axis=-1)
    return out


def render_images(props: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Draw one picture per row of image properties.

    Parameters
    ----------
    props
        Positions in [0, 1] of ``IMAGE_PROPS`` (hue, brightness, shape, size, background); the
        shape is ``SHAPES[floor(3 * position)]``. Shape (n, 5).
    size
        Image side in pixels.
    rng
        Source of the nuisance jitter (shape position, pixel noise).

    Returns
    -------
    np.ndarray
        Images, uint8, shape (n, size, size, 3).

    Examples
    --------
    >>> render_images(np.full((2, 5), 0.5), 16, np.random.default_rng(0)).shape
    (2, 16, 16, 3)
    """
    n = len(props)
    hue, value, shape_pos, radius_pos, bg_pos = (props[:, j].astype(np.float64) for j in range(5))
    colour = _hsv_to_rgb(0.8 * hue, np.full(n, 0.85), 0.35 + 0.65 * value)  # (n, 3)
    kind = np.minimum((shape_pos * 3).astype(np.int64), 2)
    r = 0.15 + 0.18 * radius_pos
    cx, cy = 0.5 + rng.uniform(-0.08, 0.08, n), 0.5 + rng.uniform(-0.08, 0.08, n)
    grid = (np.arange(size) + 0.5) / size
    dx = grid[None, None, :] - cx[:, None, None]
    dy = grid[None, :, None] - cy[:, None, None]
    rr = r[:, None, None]
    tri_r = 1.555 * rr  # circumradius of the equilateral triangle with the circle's area
    mask = np.select(
        [kind[:, None, None] == 0, kind[:, None, None] == 1],
        [dx ** 2 + dy ** 2 <= rr ** 2, np.maximum(np.abs(dx), np.abs(dy)) <= 0.886 * rr],
        (dy <= 0.5 * tri_r) & (np.abs(dx) <= (dy + tri_r) / math.sqrt(3)),
    )
    bg = (0.05 + 0.5 * bg_pos)[:, None, None, None] * np.ones(3)
    img = np.where(mask[..., None], colour[:, None, None, :], bg)
    img = img + rng.normal(0.0, 4.0 / 255, img.shape)
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def render_audio(props: np.ndarray, seconds: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Synthesise one clip per row of audio properties.

    Parameters
    ----------
    props
        Positions in [0, 1] of ``AUDIO_PROPS`` (pitch, decay, loudness, timbre). Shape (n, 4).
    seconds, sample_rate
        Clip length and rate.
    rng
        Source of a faint background hiss.

    Returns
    -------
    np.ndarray
        Samples in [-1, 1], float32, shape (n, round(seconds * sample_rate)).

    Examples
    --------
    >>> render_audio(np.full((1, 4), 0.5), 0.1, 8000, np.random.default_rng(0)).shape
    (1, 800)
    """
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    pitch = 200.0 * 2.0 ** (2.3 * props[:, 0:1])  # 200-985 Hz; harmonics stay below 3 kHz
    decay = 0.5 + 14.5 * props[:, 1:2]
    loud = 0.2 + 0.7 * props[:, 2:3]
    harm = 0.75 * props[:, 3:4]
    phase = 2 * np.pi * pitch * t
    tone = (1 - harm) * np.sin(phase) + harm * (0.6 * np.sin(2 * phase) + 0.4 * np.sin(3 * phase))
    env = np.minimum(t / 0.005, 1.0) * np.exp(-decay * t)
    x = loud * env * tone + rng.normal(0.0, 0.003, tone.shape)
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def _write_media(cfg: SyntheticConfig, truth: Mapping[str, np.ndarray], item_ids: np.ndarray, media_dir: Path,
                 progress: Progress | None, done: int, total: int) -> tuple[list[str], list[str]]:
    """Write ``images/<item>.png`` and ``audio/<item>.wav``; return their absolute paths."""
    base = Path(media_dir).resolve()
    img_dir, aud_dir = base / "images", base / "audio"
    img_dir.mkdir(parents=True, exist_ok=True)
    aud_dir.mkdir(parents=True, exist_ok=True)
    rng = _rng(cfg.seed, "media")
    images, clips = [], []
    per_item = max(cfg.image_size ** 2 * 3, round(cfg.audio_seconds * cfg.sample_rate))
    chunk = max(1, min(512, (1 << 22) // per_item))  # bounded memory for large images or long clips
    for lo in range(0, cfg.n_items, chunk):
        hi = min(cfg.n_items, lo + chunk)
        pics = render_images(truth["item_image_props"][lo:hi], cfg.image_size, rng)
        sounds = render_audio(truth["item_audio_props"][lo:hi], cfg.audio_seconds, cfg.sample_rate, rng)
        for j, item in enumerate(item_ids[lo:hi]):
            ip, ap = img_dir / f"{item}.png", aud_dir / f"{item}.wav"
            _write_png(ip, pics[j])
            _write_wav(ap, sounds[j], cfg.sample_rate)
            images.append(str(ip))
            clips.append(str(ap))
        if progress is not None:
            progress(done + hi, total)
    return images, clips


def default_media_dir(cfg: SyntheticConfig) -> Path:
    """Where :func:`generate` writes media when given no ``media_dir``: a temp folder per config."""
    digest = hashlib.sha1(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"fusionrec-synthetic-{digest}"


# ---------------------------------------------------------------------------------------- assembly
@dataclass
class _World:
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    social: pd.DataFrame
    kg: pd.DataFrame
    item_entities: pd.DataFrame
    item_schema: dict[str, str]
    truth: dict[str, object]


def _build(cfg: SyntheticConfig, media_dir: str | Path | None, progress: Progress | None) -> _World:
    t0 = time.perf_counter()
    truth: dict[str, np.ndarray] = {}
    truth.update(_items(cfg))
    truth.update(_users(cfg))
    total = cfg.n_users + (cfg.n_items if cfg.media else 0)
    ev = _events(cfg, truth, progress, total)
    user_ids, item_ids = _ids("u", cfg.n_users), _ids("i", cfg.n_items)
    interactions = pd.DataFrame({"user": user_ids[ev["user"]], "item": item_ids[ev["item"]],
                                 "timestamp": ev["timestamp"], "rating": ev["rating"]})
    genre_names = np.array(GENRES[: cfg.n_genres], dtype=object)
    tag_names = np.array(TAGS[: cfg.n_tags], dtype=object)
    tags = truth["item_tags"].astype(bool)
    tag_r, tag_c = np.nonzero(tags)
    tag_lists = np.split(tag_names[tag_c], np.cumsum(tags.sum(axis=1))[:-1])
    items = pd.DataFrame({
        "item": item_ids, "title": truth.pop("item_title"), "description": truth.pop("item_description"),
        "genre": genre_names[truth["item_genre"]], "tags": ["|".join(t) for t in tag_lists],
        "price": truth["item_price"],
    })
    schema = {c: k for c, k in ITEM_SCHEMA.items() if c in items.columns}
    if cfg.media:
        where = Path(media_dir) if media_dir is not None else default_media_dir(cfg)
        items["image"], items["audio"] = _write_media(cfg, truth, item_ids, where, progress, cfg.n_users, total)
        schema.update(image="image", audio="audio")
    users = pd.DataFrame({"user": user_ids, "age": truth["user_age"],
                          "region": np.array(REGIONS[: cfg.n_regions], dtype=object)[truth["user_region"]]})
    fa, fb = _social(cfg, truth)
    social = pd.DataFrame({"user": user_ids[fa], "friend": user_ids[fb]})
    ent = np.array([f"item/{i}" for i in item_ids], dtype=object)
    artists = np.array([f"artist/a{a}" for a in range(int(truth["item_artist"].max()) + 1)], dtype=object)
    kg = pd.DataFrame({
        "head": np.concatenate([ent, ent[tag_r], ent]),
        "relation": np.repeat(np.array(["has_genre", "has_tag", "by_artist"], dtype=object),
                              [cfg.n_items, len(tag_r), cfg.n_items]),
        "tail": np.concatenate(["genre/" + genre_names[truth["item_genre"]], "tag/" + tag_names[tag_c],
                                artists[truth["item_artist"]]]),
    })
    item_entities = pd.DataFrame({"item": item_ids, "entity": ent})
    out_truth: dict[str, object] = dict(truth)
    out_truth["signal_weights"] = _signal_weights(cfg)
    out_truth["config"] = cfg.to_dict()
    log.info("synthetic world: %d users, %d items, %d interactions, %d friend edges in %.1fs",
             cfg.n_users, cfg.n_items, len(interactions), len(social), time.perf_counter() - t0)
    return _World(interactions, items, users, social, kg, item_entities, schema, out_truth)


def generate(config: SyntheticConfig | None = None, *, media_dir: str | Path | None = None,
             progress: Progress | None = None) -> Dataset:
    """Generate the synthetic world as a :class:`Dataset` named ``synthetic``.

    Parameters
    ----------
    config
        The world; defaults to ``SyntheticConfig()`` (500 users, 300 items, media on).
    media_dir
        Where images (``images/<item>.png``) and clips (``audio/<item>.wav``) go when
        ``config.media``; defaults to :func:`default_media_dir`. Paths in the items table are absolute.
    progress
        Called as ``progress(done, total)`` while users are simulated and media written.

    Returns
    -------
    Dataset
        interactions (user, item, timestamp, rating), items (title, description, genre, tags,
        price, [image, audio]), users (age, region), social, kg and item_entities. Dense index
        ``k`` is raw id ``u{k}`` / ``i{k}`` (zero-padded); ``meta["truth"]`` holds the ground truth
        (see the module docstring).

    Examples
    --------
    >>> ds = generate(SyntheticConfig(n_users=30, n_items=20, media=False))
    >>> sorted(ds.modalities())
    ['categorical', 'multi', 'numeric', 'text']
    """
    cfg = config if config is not None else SyntheticConfig()
    if not isinstance(cfg, SyntheticConfig):
        raise ConfigError(f"generate() needs a SyntheticConfig, got {type(cfg).__name__}; "
                          f"build one with SyntheticConfig(n_users=..., ...)")
    w = _build(cfg, media_dir, progress)
    meta: dict[str, object] = {"truth": w.truth}
    if cfg.media:
        meta["media_dir"] = str(Path(media_dir if media_dir is not None else default_media_dir(cfg)).resolve())
    return Dataset.from_frames(w.interactions, items=w.items, users=w.users, social=w.social, kg=w.kg,
                               item_entities=w.item_entities, item_schema=w.item_schema,
                               user_schema=dict(USER_SCHEMA), name="synthetic", source="synthetic interactions",
                               meta=meta)


def write(config: SyntheticConfig | None, out: str | Path, *, overwrite: bool = False,
          progress: Progress | None = None) -> Path:
    """Generate a world and write it as a generic dataset directory.

    Writes ``interactions.tsv``, ``items.tsv``, ``users.tsv``, ``social.tsv``, ``kg.tsv``,
    ``item_entities.tsv``, ``schema.json``, ``truth.npz`` (arrays), ``truth.json`` (the config)
    and, when ``config.media``, ``images/`` and ``audio/`` (paths in ``items.tsv`` are relative
    to ``out``). The directory appears atomically: it is built next to ``out`` and renamed.

    Parameters
    ----------
    config
        The world; None for the default.
    out
        The directory to create; an existing empty directory is replaced.
    overwrite
        Replace a non-empty ``out``.
    progress
        As in :func:`generate`.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    DataError
        ``out`` exists, is not empty and ``overwrite`` is False.

    Examples
    --------
    >>> write(SyntheticConfig(n_users=50, n_items=40), "data/synthetic")  # doctest: +SKIP
    """
    cfg = config if config is not None else SyntheticConfig()
    out = Path(out)
    if out.exists() and not (out.is_dir() and not any(out.iterdir())) and not overwrite:
        raise DataError(f"{out} already exists and is not empty; pass overwrite=True or choose another directory.")
    out.parent.mkdir(parents=True, exist_ok=True)

    def fill(tmp: Path) -> None:
        w = _build(cfg, tmp, progress)
        if cfg.media:
            for col in ("image", "audio"):
                w.items[col] = [Path(p).relative_to(tmp.resolve()).as_posix() for p in w.items[col]]
        tables = {"interactions": w.interactions, "items": w.items, "users": w.users, "social": w.social,
                  "kg": w.kg, "item_entities": w.item_entities}
        for name, df in tables.items():
            df.to_csv(tmp / f"{name}.tsv", sep="\t", index=False, encoding="utf-8", lineterminator="\n")
        schema = {"items": w.item_schema, "users": dict(USER_SCHEMA)}
        (tmp / "schema.json").write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
        arrays = {k: v for k, v in w.truth.items() if isinstance(v, np.ndarray)}
        np.savez(tmp / "truth.npz", **arrays)  # type: ignore[arg-type]
        (tmp / "truth.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n", encoding="utf-8")

    atomic_write_dir(out, fill)
    log.info("wrote synthetic world to %s", out)
    return out


def true_utility(truth: Mapping[str, object], users: Sequence[int] | np.ndarray | None = None, *,
                 t: float = 0.0, popularity: bool = True) -> np.ndarray:
    """The deterministic part of the utility: affinity over the signal groups (+ popularity).

    Parameters
    ----------
    truth
        ``dataset.meta["truth"]``, or the arrays of ``truth.npz``.
    users
        Dense user indices; all users when None.
    t
        Time fraction of the span (0 = start, 1 = end); preferences drift linearly in it.
    popularity
        Add the item popularity bias.

    Returns
    -------
    np.ndarray
        Utilities, float64, shape (len(users), n_items).

    Examples
    --------
    >>> ds = generate(SyntheticConfig(n_users=30, n_items=20, media=False))
    >>> true_utility(ds.meta["truth"], [0, 1]).shape
    (2, 20)
    """
    arr = {k: np.asarray(v) for k, v in truth.items() if k != "config"}
    weights = arr["signal_weights"]
    n_users = len(arr[f"user_{GROUPS[0]}"])
    idx = np.arange(n_users) if users is None else np.asarray(users, dtype=np.int64)
    out = np.zeros((len(idx), len(arr["item_popularity"])))
    for g, w in zip(GROUPS, weights, strict=True):
        if w > 0:
            pref = arr[f"user_{g}"][idx].astype(np.float64) + t * arr[f"user_drift_{g}"][idx]
            out += w * pref @ arr[f"item_{g}"].T.astype(np.float64)
    if popularity:
        out += arr["item_popularity"][None, :]
    return out


__all__ = ["GROUPS", "SyntheticConfig", "default_media_dir", "generate", "render_audio", "render_images",
           "true_utility", "write"]
