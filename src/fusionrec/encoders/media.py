"""What image and audio encoders share: cached file decoding and a small CNN aligned to behaviour.

Loading (:func:`load_media`): each file is read once to hash its bytes; only files whose key is not
in the embedding cache are decoded, and their decoded arrays (pixels, log-mel frames) are cached
as float16. A row without a path, a missing file or a file that does not decode never raises: it
is marked absent and reported (:class:`MediaBatch`).

Encoding (:class:`AlignedCNNEncoder`): a 3-layer :class:`SmallCNN` with average pooling.

* With behaviour targets (``fit(inputs, targets)``, e.g. item factors of a collaborative model),
  the CNN and a linear head are trained to predict each item's behaviour vector from its content
  with a symmetric InfoNCE loss plus a cosine term (contrastive modality/behaviour alignment, as in
  CLIP: A. Radford et al., ICML 2021; for recommendation, e.g. CLCRec: Y. Wei et al., "Contrastive
  Learning for Cold-Start Recommendation", MM 2021). The targets are L2-normalised and, by
  default, centred (``AlignConfig.center_targets``: minus ``target_mean_``, the mean normalised
  training target): factor models share a large common direction (popularity) that any item
  "predicts" without looking at its content, so the CNN learns the item-specific part. Output:
  the L2-normalised prediction of that centred direction (d = the targets' width; add
  ``target_mean_`` back for a behaviour-direction estimate), so a cold item gets a behaviour-like
  vector. ``report_`` holds held-out cosines per epoch and two baselines to beat: the same
  predictions against shuffled targets, and the mean direction. On ml-latest-small posters
  (32 px, 32-d SVD factors) the held-out cosine was 0.062 against 0.004 shuffled and 0.031 for
  the mean direction: a real but weak signal, as expected from thumbnails. The training loop is the
  one :class:`~fusionrec.training.trainer.Trainer` (the encoder is its task; the data are decoded
  arrays): AdamW at a constant rate, seeded batches, the best held-out epoch kept, and with
  ``checkpoint_dir`` set a checkpoint every epoch from which a killed fit resumes to the same weights.
* Without targets, the output is the seeded random-init CNN's pooled features concatenated with a
  hand-made summary (colour histogram for images, mean log-mel profile for audio), each column
  standardised over the fitted rows, then L2-normalised: deterministic, content-only features.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch
from torch import nn

from fusionrec.encoders.progress import progress_bar
from fusionrec.encoders.store import EmbeddingStore, content_key
from fusionrec.threads import torch_threads
from fusionrec.training.task import Trainable, best_record
from fusionrec.training.trainer import TrainConfig

log = logging.getLogger(__name__)

#: paths shown in a report of missing / corrupt files
N_EXAMPLES = 5


# ---------------------------------------------------------------------------------------- loading
@dataclass
class MediaBatch:
    """Decoded inputs of the present rows among n.

    ``inputs[j]`` belongs to row ``rows[j]``, ``rows = np.flatnonzero(present)``.
    """

    inputs: np.ndarray  # (m, C, H, W) float32, m = present.sum()
    present: np.ndarray  # (n,) bool
    no_input: int = 0  # rows without a path
    missing: list[str] = field(default_factory=list)  # paths that could not be read
    corrupt: list[str] = field(default_factory=list)  # paths that did not decode
    decoded: int = 0  # distinct contents decoded now
    cached: int = 0  # distinct contents read from the cache

    def report(self) -> dict[str, object]:
        """JSON-able counts, with the first few missing / corrupt paths."""
        return {"rows": len(self.present), "present": int(self.present.sum()), "no_input": self.no_input,
                "missing_files": len(self.missing), "corrupt": len(self.corrupt),
                "missing_examples": self.missing[:N_EXAMPLES], "corrupt_examples": self.corrupt[:N_EXAMPLES],
                "decoded": self.decoded, "cached": self.cached}


def _path_of(v: object) -> str | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    s = str(v).strip()
    return s or None


def load_media(paths: Sequence[object], *, decoder_id: str, decode: Callable[[bytes], np.ndarray],
               shape: tuple[int, ...], store: EmbeddingStore | None, what: str,
               progress: bool = False) -> MediaBatch:
    """Decode the files at ``paths`` (None / NaN / "" = no input) to arrays of ``shape``, through the cache.

    ``decode(bytes) -> array of shape`` raises on a corrupt file. The cache key of a file is
    ``content_key(decoder_id, file bytes)``; its value is the decoded array, flattened, float16, or
    a NaN row for content that does not decode (so a corrupt file is not retried either). Rows get
    the float16 values on the first call too, so the first and later calls give the same vectors.
    """
    n = len(paths)
    batch = MediaBatch(np.zeros((0, *shape), np.float32), np.zeros(n, bool))
    row_key: dict[int, bytes] = {}
    key_path: dict[bytes, str] = {}
    with progress_bar(n, f"{what}: hashing files", progress) as advance:
        for r, v in enumerate(paths):
            p = _path_of(v)
            if p is None:
                batch.no_input += 1
            else:
                try:
                    data = Path(p).expanduser().read_bytes()
                except OSError:
                    batch.missing.append(p)
                else:
                    k = content_key(decoder_id, data)
                    row_key[r] = k
                    key_path.setdefault(k, p)
            advance(1)
    keys = list(key_path)
    values: dict[bytes, np.ndarray] = {}
    bad: set[bytes] = set()  # contents that do not decode (cached as a NaN row: a decoder is deterministic)
    size = int(np.prod(shape))
    if store is not None and keys:
        got, found = store.get_many(keys)
        if got.shape[1] == size:
            for i, k in enumerate(keys):
                if found[i]:
                    if np.isnan(got[i, 0]):
                        bad.add(k)
                    else:
                        values[k] = got[i].reshape(shape).astype(np.float32)
    batch.cached = len(values) + len(bad)
    todo = [k for k in keys if k not in values and k not in bad]
    new_keys: list[bytes] = []
    new_vals: list[np.ndarray] = []
    with progress_bar(len(todo), f"{what}: decoding", progress) as advance:
        for k in todo:
            p = key_path[k]
            try:
                arr = decode(Path(p).expanduser().read_bytes())
                if arr.shape != shape or not np.isfinite(arr).all():
                    raise ValueError(f"decoded to {arr.shape}, expected {shape}, or not finite")
            except Exception as e:  # any decoder failure is a corrupt file, reported, never fatal
                log.debug("%s: %s does not decode: %s: %s", what, p, type(e).__name__, e)
                bad.add(k)
                new_keys.append(k)
                new_vals.append(np.full(size, np.nan, np.float16))
            else:
                half = arr.astype(np.float16)
                values[k] = half.astype(np.float32)  # what the cache gives back next time: same vectors
                new_keys.append(k)
                new_vals.append(half.reshape(-1))
            advance(1)
    batch.decoded = len(todo)
    if store is not None and new_keys:
        store.put_many(new_keys, np.stack(new_vals))
    corrupt_rows = []
    for r, k in row_key.items():
        if k in bad:
            corrupt_rows.append(r)
        else:
            batch.present[r] = True
    rows = np.flatnonzero(batch.present)
    if len(rows):
        batch.inputs = np.stack([values[row_key[int(r)]] for r in rows]).astype(np.float32, copy=False)
    batch.corrupt = [_path_of(paths[r]) or "" for r in corrupt_rows]
    if batch.missing or batch.corrupt:
        log.warning("%s: %d missing and %d corrupt file(s) of %d rows; they are marked absent. First: %s",
                    what, len(batch.missing), len(batch.corrupt), n,
                    ", ".join((batch.missing + batch.corrupt)[:N_EXAMPLES]))
    return batch


# ---------------------------------------------------------------------------------------- the CNN
@dataclass(frozen=True)
class AlignConfig(TrainConfig):
    """How a media CNN is trained to predict behaviour vectors (by the one trainer: the optimiser's
    settings are :class:`TrainConfig`'s, with defaults for AdamW at a constant rate, no clipping).

    Parameters
    ----------
    epochs : passes over the items with both content and behaviour (the best epoch on the held-out
        part is kept; without a held-out part, the last)
    batch_size : items per step; the other items of a batch are the InfoNCE negatives
    lr, weight_decay : AdamW
    seed : set from the encoder's ``seed`` argument (one config serves the image and the audio encoder)
    temperature : InfoNCE temperature
    cosine_weight : weight of the ``1 - cos(prediction, target)`` term added to InfoNCE
    valid_fraction : share of the trainable items held out to pick the best epoch (none below 20 items)
    center_targets : subtract the mean training target before aligning (see the module docstring)
    width : channels of the last conv layer (layers: width/4, width/2, width)
    threads : torch intra-op threads while training and encoding (restored after); 0 = torch's
        default. These convolutions are small: on a shared CPU more threads mostly add contention
    """

    epochs: int = 15
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    temperature: float = 0.1
    cosine_weight: float = 1.0
    center_targets: bool = True
    valid_fraction: float = 0.1
    width: int = 64
    threads: int = 1
    warmup_steps: int = 0
    schedule: str = "constant"
    grad_clip: float = 0.0
    patience: int = 0  # every epoch runs; the best held-out epoch is kept

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "width"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"AlignConfig.{name} must be an integer >= 1, got {v!r}")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 0:
            raise ValueError(f"AlignConfig.threads must be an integer >= 0, got {self.threads!r}")
        if self.width < 4:
            raise ValueError(f"AlignConfig.width must be >= 4, got {self.width}")
        for name in ("lr", "temperature"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ValueError(f"AlignConfig.{name} must be a number > 0, got {v!r}")
        for name in ("weight_decay", "cosine_weight"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                raise ValueError(f"AlignConfig.{name} must be a number >= 0, got {v!r}")
        if not (0.0 <= self.valid_fraction < 1.0):
            raise ValueError(f"AlignConfig.valid_fraction must be in [0, 1), got {self.valid_fraction!r}")
        super().__post_init__()


@dataclass
class AlignmentData:
    """What an :class:`AlignedCNNEncoder` trains (or validates) on: rows ``rows`` of the inputs and targets."""

    x: torch.Tensor  # (m, C, H, W) standardised inputs
    y: torch.Tensor  # (m, d) unit (centred) behaviour directions
    rows: np.ndarray  # (n,) the rows of this part

    def __len__(self) -> int:
        return len(self.rows)


class SmallCNN(nn.Module):
    """Three stride-2 3x3 conv layers with ReLU, average pooling, optional linear head.

    ``pool="global"`` averages over H and W (images): ``(B, C, H, W) -> embed -> (B, width)``.
    ``pool="time"`` averages over W only and keeps the H (frequency) positions, for spectrograms
    whose band matters (pitch): ``-> (B, width * ceil(H / 8))``. Then ``head -> (B, out_dim)``.
    """

    def __init__(self, in_channels: int, width: int = 64, out_dim: int | None = None, *,
                 pool: str = "global", height: int | None = None) -> None:
        super().__init__()
        if pool not in ("global", "time"):
            raise ValueError(f"SmallCNN pool must be 'global' or 'time', got {pool!r}")
        if pool == "time" and not height:
            raise ValueError("SmallCNN(pool='time') needs the input height")
        c1, c2 = max(1, width // 4), max(1, width // 2)
        self.pool = pool
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c2, width, 3, stride=2, padding=1), nn.ReLU(),
        )
        h = height or 0
        for _ in range(3):
            h = (h + 1) // 2  # stride-2, padding-1, kernel-3 output size
        self.embed_dim = width if pool == "global" else width * h
        self.head = nn.Linear(self.embed_dim, out_dim) if out_dim else None

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)  # (B, width, H', W')
        if self.pool == "global":
            return f.mean(dim=(2, 3))  # (B, width)
        return f.mean(dim=3).flatten(1)  # (B, width * H')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        return self.head(h) if self.head is not None else h  # (B, out_dim or embed_dim)


def _l2(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 0).astype(np.float32)


class AlignedCNNEncoder(Trainable):
    """A :class:`SmallCNN` over decoded media, aligned to behaviour when targets are given.

    Subclasses set ``name``, ``in_channels``, implement :meth:`load` (paths -> :class:`MediaBatch`)
    and :meth:`summary` (the hand-made features of the untrained mode), and add their own
    settings to :meth:`settings`. Set ``checkpoint_dir`` (and ``on_epoch``) before ``fit`` to checkpoint
    the alignment every epoch and resume it after a kill.
    """

    name: ClassVar[str] = "cnn"
    in_channels: ClassVar[int] = 1
    summary_name: ClassVar[str] = "summary"
    pool: ClassVar[str] = "global"
    valid_metric: ClassVar[str] = "cos"  # mean cosine of held-out predictions and targets

    def __init__(self, *, config: AlignConfig | None = None, seed: int = 0) -> None:
        self.seed = int(seed)
        self.config = dataclasses.replace(config or AlignConfig(), seed=self.seed)
        self.network_: SmallCNN | None = None
        self.mode_: str | None = None  # "aligned" | "random"
        self.in_mean_: np.ndarray | None = None  # (C,)
        self.in_std_: np.ndarray | None = None  # (C,)
        self.feat_mean_: np.ndarray | None = None  # (k,) random mode
        self.feat_std_: np.ndarray | None = None
        self.target_mean_: np.ndarray | None = None  # (d,) aligned mode
        self.report_: dict[str, object] = {}

    # -- to implement -------------------------------------------------------------------------
    def load(self, paths: Sequence[object], *, cache_dir: str | Path | None = None,
             progress: bool = False) -> MediaBatch:
        raise NotImplementedError

    def summary(self, inputs: np.ndarray) -> np.ndarray:
        """(m, C, H, W) raw inputs -> (m, k) hand-made features for the untrained mode."""
        raise NotImplementedError

    def settings(self) -> dict[str, object]:
        """The subclass's constructor settings, JSON-able (saved with the weights)."""
        return {}

    def input_height(self) -> int | None:
        """Input height H (needed by ``pool="time"``)."""
        return None

    # -- shared -------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"{type(self).__name__}(mode={self.mode_}, seed={self.seed})"

    @property
    def describe(self) -> str:
        if self.mode_ == "aligned":
            return f"{self.name} aligned to behaviour ({self.report_.get('train_items')} items)"
        return f"{self.name} random-init features + {self.summary_name}"

    @property
    def out_dim(self) -> int:
        if self.network_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call .fit(inputs) first")
        if self.mode_ == "aligned":
            assert self.network_.head is not None
            return int(self.network_.head.out_features)
        assert self.feat_mean_ is not None
        return len(self.feat_mean_)

    def _build(self, out_dim: int | None) -> SmallCNN:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return SmallCNN(self.in_channels, self.config.width, out_dim, pool=self.pool, height=self.input_height())

    def _tensor(self, inputs: np.ndarray) -> torch.Tensor:
        assert self.in_mean_ is not None and self.in_std_ is not None
        x = (inputs - self.in_mean_[None, :, None, None]) / self.in_std_[None, :, None, None]
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

    def _run(self, inputs: np.ndarray, fn: Callable[[torch.Tensor], torch.Tensor], batch: int = 512) -> np.ndarray:
        assert self.network_ is not None
        self.network_.eval()
        outs = []
        with torch.no_grad():
            for s in range(0, len(inputs), batch):
                outs.append(fn(self._tensor(inputs[s:s + batch])).numpy())
        return np.concatenate(outs).astype(np.float32)

    def fit(self, inputs: np.ndarray, targets: np.ndarray | None = None) -> Self:
        """Fit on present rows' inputs (m, C, H, W); ``targets`` (m, d) behaviour vectors, zero rows = none.

        With fewer than 8 rows that have a non-zero target, falls back to the untrained mode (logged).
        """
        with torch_threads(self.config.threads):
            return self._fit(inputs, targets)

    def _fit(self, inputs: np.ndarray, targets: np.ndarray | None) -> Self:
        t0 = time.perf_counter()
        inputs = np.asarray(inputs, np.float32)
        if inputs.ndim != 4 or inputs.shape[1] != self.in_channels:
            raise ValueError(f"{self.name} needs inputs of shape (m, {self.in_channels}, H, W), got {inputs.shape}")
        if len(inputs):
            self.in_mean_ = inputs.mean(axis=(0, 2, 3)).astype(np.float32)
            self.in_std_ = np.maximum(inputs.std(axis=(0, 2, 3)), 1e-3).astype(np.float32)
        else:
            self.in_mean_ = np.zeros(self.in_channels, np.float32)
            self.in_std_ = np.ones(self.in_channels, np.float32)
        has = np.zeros(len(inputs), bool)
        if targets is not None:
            targets = np.asarray(targets, np.float32)
            if targets.ndim != 2 or len(targets) != len(inputs):
                raise ValueError(f"{self.name}: targets must be (m={len(inputs)}, d), got {targets.shape}")
            has = np.linalg.norm(targets, axis=1) > 0
            if 0 < has.sum() < 8:
                log.warning("%s: only %d item(s) have both content and behaviour; using untrained features",
                            self.name, int(has.sum()))
        if targets is not None and has.sum() >= 8:
            self._align(inputs[has], targets[has])
        else:
            self._random(inputs)
        self.report_["seconds"] = round(time.perf_counter() - t0, 2)
        return self

    def _random(self, inputs: np.ndarray) -> None:
        self.mode_ = "random"
        self.network_ = self._build(None)
        feats = self._features(inputs, standardise=False)
        if len(feats):
            self.feat_mean_ = feats.mean(axis=0)
            self.feat_std_ = np.maximum(feats.std(axis=0), 1e-6)
        else:
            self.feat_mean_ = np.zeros(feats.shape[1], np.float32)
            self.feat_std_ = np.ones(feats.shape[1], np.float32)
        self.report_ = {"mode": "random", "fit_items": len(inputs)}

    def _features(self, inputs: np.ndarray, *, standardise: bool = True) -> np.ndarray:
        assert self.network_ is not None
        net = self.network_
        cnn = self._run(inputs, net.embed) if len(inputs) else np.zeros((0, net.embed_dim), np.float32)
        feats = np.concatenate([cnn, self.summary(inputs).astype(np.float32)], axis=1)
        if standardise:
            assert self.feat_mean_ is not None and self.feat_std_ is not None
            feats = (feats - self.feat_mean_) / self.feat_std_
        return feats.astype(np.float32)

    def _align(self, x: np.ndarray, y: np.ndarray) -> None:
        cfg = self.config
        rng = np.random.default_rng(self.seed)
        m = len(x)
        n_valid = int(round(m * cfg.valid_fraction)) if m >= 20 else 0
        perm = rng.permutation(m)
        valid, train = perm[:n_valid], perm[n_valid:]
        self.network_ = self._build(y.shape[1])
        self.mode_ = "aligned"
        y = _l2(y)  # directions: the losses are cosines
        self.target_mean_ = (y[train].mean(0) if cfg.center_targets else np.zeros(y.shape[1])).astype(np.float32)
        xt = self._tensor(x)  # (m, C, H, W)
        yt = nn.functional.normalize(torch.from_numpy(y - self.target_mean_), dim=1)  # (m, d)
        with torch.random.fork_rng(devices=[]):  # the caller's torch RNG is left as it was
            history = self.run_trainer(AlignmentData(xt, yt, train), AlignmentData(xt, yt, valid) if n_valid else None)
        net = self.network_
        best = best_record(history, self.valid_metric, higher=True)
        self.report_ = {"mode": "aligned", "train_items": int(len(train)), "valid_items": int(n_valid),
                        "epochs": cfg.epochs, "best_epoch": best["epoch"] if best else len(history),
                        "train_cos": round(self._mean_cos(AlignmentData(xt, yt, train)), 4),
                        ("valid_cos" if n_valid else "train_loss"):
                            [round(h["valid"][self.valid_metric] if n_valid else h["loss"], 4) for h in history]}
        if n_valid:
            # the bars to clear: the same predictions against shuffled targets, and the mean direction
            net.eval()
            with torch.no_grad():
                z = nn.functional.normalize(net(xt[valid]), dim=1)
            shuffled = yt[valid][torch.from_numpy(rng.permutation(n_valid))]
            mean_dir = nn.functional.normalize(yt[train].mean(0), dim=0)
            self.report_.update(best_valid_cos=round(best["valid"][self.valid_metric], 4) if best else None,
                                valid_cos_shuffled=round(float((z * shuffled).sum(1).mean()), 4),
                                valid_cos_of_mean=round(float((yt[valid] @ mean_dir).mean()), 4))

    def _mean_cos(self, part: AlignmentData) -> float:
        """Mean cosine of the network's predictions and the targets of ``part``'s rows."""
        assert self.network_ is not None
        self.network_.eval()
        with torch.no_grad():
            z = nn.functional.normalize(self.network_(part.x[part.rows]), dim=1)
        return float((z * part.y[part.rows]).sum(1).mean())

    # -- the training task (fusionrec.training.task) ----------------------------------------------
    def _batch_rows(self, rows: np.ndarray) -> list[np.ndarray]:
        """``rows`` cut into batches; a last batch of one row is dropped (InfoNCE needs two), unless it is all."""
        bs = self.config.batch_size
        cuts = [rows[s:s + bs] for s in range(0, len(rows), bs)]
        return [b for b in cuts if len(b) >= 2 or len(rows) < 2]

    def steps_per_epoch(self, data: AlignmentData) -> int:
        return len(self._batch_rows(data.rows))

    def training_batches(self, data: AlignmentData, rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
        for b in self._batch_rows(data.rows[rng.permutation(len(data.rows))]):
            idx = torch.from_numpy(b)
            yield data.x[idx], data.y[idx]  # (B, C, H, W), (B, d)

    def training_step(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Symmetric InfoNCE of predictions against targets (the batch's other items are the negatives),
        plus ``cosine_weight`` times ``1 - cos``."""
        cfg = self.config
        x, t = batch
        assert self.network_ is not None  # set by _align
        z = nn.functional.normalize(self.network_(x), dim=1)  # (B, d)
        logits = z @ t.T / cfg.temperature  # (B, B)
        lab = torch.arange(len(t), device=t.device)
        loss = 0.5 * (nn.functional.cross_entropy(logits, lab) + nn.functional.cross_entropy(logits.T, lab))
        return loss + cfg.cosine_weight * (1.0 - (z * t).sum(1)).mean()

    def validation_metric(self, valid: AlignmentData) -> float:
        return self._mean_cos(valid)

    def data_fingerprint(self, data: AlignmentData) -> str:
        """A short hash of the inputs, targets and training rows (a checkpoint resumes only on the same data)."""
        h = hashlib.sha1()
        for a in (data.x.numpy(), data.y.numpy(), data.rows):
            h.update(f"{a.shape}|{a.dtype}".encode())
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]

    def encode(self, inputs: np.ndarray) -> np.ndarray:
        """(m, C, H, W) decoded inputs -> (m, out_dim) float32, L2-normalised."""
        if self.network_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call .fit(inputs) first")
        inputs = np.asarray(inputs, np.float32)
        if len(inputs) == 0:
            return np.zeros((0, self.out_dim), np.float32)
        with torch_threads(self.config.threads):
            if self.mode_ == "aligned":
                return _l2(self._run(inputs, self.network_))
            return _l2(self._features(inputs))

    # -- persistence (safetensors-friendly: arrays + JSON) --------------------------------------
    def to_state(self) -> tuple[dict[str, np.ndarray], dict[str, object]]:
        """Weights and statistics as numpy arrays, settings as a JSON-able dict."""
        if self.network_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; nothing to save")
        arrays: dict[str, np.ndarray] = {f"net.{k}": v.detach().cpu().numpy().copy() for k, v in self.network_.state_dict().items()}
        for k in ("in_mean_", "in_std_", "feat_mean_", "feat_std_", "target_mean_"):
            v = getattr(self, k)
            if v is not None:
                arrays[k.rstrip("_")] = np.asarray(v, np.float32)
        head = self.network_.head
        meta: dict[str, object] = {"encoder": self.name, "mode": self.mode_, "seed": self.seed,
                "config": dataclasses.asdict(self.config), "settings": self.settings(),
                "out_dim": int(head.out_features) if head is not None else None, "report": self.report_}
        return arrays, meta

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Self:
        """Rebuild a fitted encoder from :meth:`to_state`'s output."""
        enc = cls(config=AlignConfig(**meta["config"]), seed=int(meta["seed"]), **meta.get("settings", {}))
        enc.mode_ = str(meta["mode"])
        enc.network_ = enc._build(meta.get("out_dim"))
        enc.network_.load_state_dict({k[4:]: torch.from_numpy(np.array(v)) for k, v in arrays.items()
                                      if k.startswith("net.")})
        for k in ("in_mean", "in_std", "feat_mean", "feat_std", "target_mean"):
            if k in arrays:
                setattr(enc, f"{k}_", np.asarray(arrays[k], np.float32))
        enc.report_ = dict(meta.get("report") or {})
        return enc
