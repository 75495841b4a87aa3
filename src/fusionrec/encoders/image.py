"""Image encoders: a small CNN trained here to predict behaviour, or a pretrained torchvision backbone.

Pictures are decoded with Pillow (``pillow`` is a core dependency), alpha composited on white,
converted to RGB and resized (squashed, not cropped) to ``image_size`` x ``image_size``; pixels in
[0, 1] are cached as float16 by file-content hash, so a poster is decoded once, not per call.
Normalisation (per-channel mean/std of the fitted images, or ImageNet's for torchvision) happens
at encoding time.

``cnn-image`` (:class:`CNNImageEncoder`): see :mod:`fusionrec.encoders.media`. Aligned to
behaviour vectors when given; otherwise random-init CNN features + an 8-bin-per-channel colour
histogram (24 values), standardised and L2-normalised.

``torchvision-image`` (:class:`TorchvisionImageEncoder`): frozen penultimate-layer features of a
torchvision architecture (e.g. ``resnet18``) whose weights you give as a local ``.safetensors``
file (no download, no pickle). torchvision must match your torch build and is not a dependency of
fusionrec: ``pip install torchvision``; the encoder raises ImportError saying so when it is absent.
Convert a torchvision checkpoint once with ``safetensors.torch.save_file(model.state_dict(), path)``.

Examples
--------
>>> import numpy as np
>>> enc = CNNImageEncoder(image_size=16).fit(np.random.default_rng(0).random((10, 3, 16, 16)))
>>> enc.encode(np.zeros((2, 3, 16, 16), np.float32)).shape
(2, 88)
"""

from __future__ import annotations

import hashlib
import io
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch

from fusionrec.encoders.media import AlignConfig, AlignedCNNEncoder, MediaBatch, load_media
from fusionrec.encoders.store import EmbeddingStore

log = logging.getLogger(__name__)

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
HIST_BINS = 8


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError as e:  # pillow is a core dependency; this guards a broken install
        raise ImportError("image encoders need Pillow: pip install pillow") from e
    return Image


def decode_image(data: bytes, size: int) -> np.ndarray:
    """Image file bytes -> (3, size, size) float32 RGB in [0, 1]; raises on a corrupt file."""
    Image = _pil()
    with warnings.catch_warnings():  # Pillow warns on odd palettes / huge images: not our user's error
        warnings.simplefilter("ignore")
        with Image.open(io.BytesIO(data)) as img:
            img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, much faster
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                rgb = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
            else:
                rgb = img.convert("RGB")
            rgb = rgb.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
            arr = np.asarray(rgb, dtype=np.float32) / 255.0  # (size, size, 3)
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def load_images(paths: Sequence[object], *, image_size: int = 32, cache_dir: str | Path | None = None,
                progress: bool = False) -> MediaBatch:
    """Decode image files (None / "" = no image) to (n, 3, size, size) pixels in [0, 1], cached by content."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 8 <= image_size <= 1024:
        raise ValueError(f"image_size must be an integer in [8, 1024], got {image_size!r}")
    store = EmbeddingStore(cache_dir, f"image-pixels-{image_size}")
    return load_media(paths, decoder_id=f"pixels-v1-{image_size}", decode=lambda b: decode_image(b, image_size),
                      shape=(3, image_size, image_size), store=store, what="images", progress=progress)


def colour_histogram(pixels: np.ndarray, bins: int = HIST_BINS) -> np.ndarray:
    """(m, 3, H, W) pixels in [0, 1] -> (m, 3 * bins) per-channel histograms (fractions of pixels)."""
    m = len(pixels)
    out = np.zeros((m, 3 * bins), np.float32)
    if m == 0:
        return out
    flat = pixels.reshape(m, 3, -1)
    idx = np.clip((flat * bins).astype(np.int64), 0, bins - 1)  # (m, 3, P)
    idx += (np.arange(m)[:, None, None] * 3 + np.arange(3)[None, :, None]) * bins
    counts = np.bincount(idx.ravel(), minlength=m * 3 * bins).reshape(m, 3 * bins)
    return (counts / flat.shape[2]).astype(np.float32)


class CNNImageEncoder(AlignedCNNEncoder):
    """SmallCNN on RGB pixels; aligned to behaviour or random-init + colour histogram."""

    name: ClassVar[str] = "cnn-image"
    in_channels: ClassVar[int] = 3
    summary_name: ClassVar[str] = "colour histogram"

    def __init__(self, *, image_size: int = 32, config: AlignConfig | None = None, seed: int = 0) -> None:
        super().__init__(config=config, seed=seed)
        self.image_size = int(image_size)

    def settings(self) -> dict[str, object]:
        return {"image_size": self.image_size}

    def load(self, paths: Sequence[object], *, cache_dir: str | Path | None = None,
             progress: bool = False) -> MediaBatch:
        return load_images(paths, image_size=self.image_size, cache_dir=cache_dir, progress=progress)

    def summary(self, inputs: np.ndarray) -> np.ndarray:
        return colour_histogram(inputs)


class TorchvisionImageEncoder:
    """Frozen features of a torchvision backbone loaded from a local safetensors file.

    Parameters
    ----------
    weights : path to the backbone's ``state_dict`` saved with safetensors
    arch : a ``torchvision.models`` constructor name, e.g. ``"resnet18"``; its classifier is dropped
    image_size : input side; ImageNet backbones work best at 224 (pixels cache per size)
    """

    name: ClassVar[str] = "torchvision-image"

    def __init__(self, *, weights: str | Path, arch: str = "resnet18", image_size: int = 224,
                 config: AlignConfig | None = None, seed: int = 0) -> None:
        try:
            import torchvision  # noqa: F401
        except ImportError as e:
            raise ImportError("the torchvision-image encoder needs torchvision built for your torch "
                              "(pip install torchvision); or use 'cnn-image'") from e
        self.weights = Path(weights).expanduser().resolve()
        if not self.weights.is_file() or self.weights.suffix != ".safetensors":
            raise FileNotFoundError(f"torchvision-image needs a local .safetensors weights file, got {self.weights}")
        self.arch = arch
        self.image_size = int(image_size)
        self.seed = int(seed)
        self.network_: torch.nn.Module | None = None
        self.report_: dict[str, object] = {}
        st = self.weights.stat()
        self.id = hashlib.blake2b(f"{arch}\0{self.weights}\0{st.st_size}\0{st.st_mtime_ns}".encode(),
                                  digest_size=8).hexdigest()

    @property
    def describe(self) -> str:
        return f"{self.name} {self.arch} ({self.weights.name}, frozen)"

    def load(self, paths: Sequence[object], *, cache_dir: str | Path | None = None,
             progress: bool = False) -> MediaBatch:
        return load_images(paths, image_size=self.image_size, cache_dir=cache_dir, progress=progress)

    def fit(self, inputs: np.ndarray, targets: np.ndarray | None = None) -> Self:
        """Build the frozen backbone (``targets`` are ignored: the fusion model learns its projection)."""
        import torchvision
        from safetensors.torch import load_file

        ctor = getattr(torchvision.models, self.arch, None)
        if ctor is None:
            raise ValueError(f"torchvision.models has no architecture {self.arch!r}")
        net = ctor(weights=None)
        net.load_state_dict(load_file(str(self.weights)))
        for attr in ("fc", "classifier", "head", "heads"):
            if hasattr(net, attr):
                setattr(net, attr, torch.nn.Identity())
                break
        self.network_ = net.eval()
        self.report_ = {"mode": "frozen", "arch": self.arch}
        return self

    def encode(self, inputs: np.ndarray) -> np.ndarray:
        """(m, 3, S, S) pixels in [0, 1] -> (m, feature_dim) float32, L2-normalised."""
        if self.network_ is None:
            raise RuntimeError("TorchvisionImageEncoder is not fitted; call .fit(inputs) first")
        outs = []
        with torch.no_grad():
            for s in range(0, len(inputs), 128):
                x = (inputs[s:s + 128] - IMAGENET_MEAN[None, :, None, None]) / IMAGENET_STD[None, :, None, None]
                outs.append(self.network_(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy())
        v = np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)
        n = np.linalg.norm(v, axis=1, keepdims=True)
        return np.divide(v, n, out=np.zeros_like(v), where=n > 0).astype(np.float32)

    def to_state(self) -> tuple[dict[str, np.ndarray], dict[str, object]]:
        """No arrays: the weights stay in their file, referenced by path."""
        return {}, {"encoder": self.name, "seed": self.seed,
                    "settings": {"weights": str(self.weights), "arch": self.arch, "image_size": self.image_size},
                    "report": self.report_}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Self:
        enc = cls(seed=int(meta.get("seed", 0)), **meta["settings"])
        return enc.fit(np.zeros((0, 3, enc.image_size, enc.image_size), np.float32))
