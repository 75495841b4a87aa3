"""Audio: WAV -> log-mel spectrogram (numpy/scipy) -> a small 2-D CNN aligned to behaviour.

Clips are read with :func:`scipy.io.wavfile.read` (PCM 8/16/24/32-bit or float; channels are
averaged to mono) at their own sample rate: the window and hop are set in milliseconds and the
mel filterbank in Hz, so clips of different rates give comparable spectrograms without resampling.
A clip longer than ``n_frames`` is centre-cropped (the waveform is cut before framing, so long
files cost little); a shorter one is padded with the log floor. The log-mel frames
(1, n_mels, n_frames) are cached as float16 by file-content hash.

``logmel-cnn-audio`` (:class:`LogMelCNNAudioEncoder`): see :mod:`fusionrec.encoders.media`; its
untrained mode adds the clip's mean log-mel profile (n_mels values) to the random CNN features.

Examples
--------
>>> sr = 8000
>>> tone = np.sin(2 * np.pi * 440 * np.arange(sr) / sr)
>>> log_mel(tone, sr, LogMelConfig()).shape
(64, 128)
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scipy.io import wavfile

from fusionrec.encoders.media import AlignConfig, AlignedCNNEncoder, MediaBatch, load_media
from fusionrec.encoders.store import EmbeddingStore

LOG_FLOOR = 1e-6


@dataclass(frozen=True)
class LogMelConfig:
    """Spectrogram settings: ``n_mels`` bands from ``fmin`` to ``fmax`` Hz, ``n_frames`` frames of ``win_ms`` every ``hop_ms``.

    The bands are the same for every sample rate; a clip sampled below ``2 * fmax`` leaves its top
    bands at the log floor.
    """

    n_mels: int = 64
    n_frames: int = 128
    win_ms: float = 25.0
    hop_ms: float = 10.0
    fmin: float = 0.0
    fmax: float = 8000.0

    def __post_init__(self) -> None:
        for name in ("n_mels", "n_frames"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 8:
                raise ValueError(f"LogMelConfig.{name} must be an integer >= 8, got {v!r}")
        if not (self.win_ms > 0 and self.hop_ms > 0):
            raise ValueError(f"LogMelConfig.win_ms and hop_ms must be > 0, got {self.win_ms}, {self.hop_ms}")
        if not (0 <= self.fmin < self.fmax):
            raise ValueError(f"LogMelConfig needs 0 <= fmin < fmax, got fmin={self.fmin}, fmax={self.fmax}")

    @property
    def id(self) -> str:
        return f"logmel-v1-{self.n_mels}x{self.n_frames}-{self.win_ms:g}-{self.hop_ms:g}-{self.fmin:g}-{self.fmax:g}"


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: float | None = None) -> np.ndarray:
    """Triangular HTK-mel filters, (n_mels, n_fft // 2 + 1), peak 1.

    Edges are equally spaced in mel between ``fmin`` and ``fmax`` (default ``sample_rate / 2``)
    whatever the rate, so a band means the same Hz for every clip; bands above the Nyquist
    frequency stay empty (the log floor). A band narrower than one FFT bin gets its nearest bin.
    """
    nyquist = sample_rate / 2
    top = nyquist if fmax is None else fmax
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(top), n_mels + 2))  # (n_mels + 2,)
    freqs = np.linspace(0.0, nyquist, n_fft // 2 + 1)  # (F,)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None, :] - lo) / np.maximum(mid - lo, 1e-9)
    down = (hi - freqs[None, :]) / np.maximum(hi - mid, 1e-9)
    fb = np.maximum(0.0, np.minimum(up, down))
    empty = (fb.max(axis=1) == 0) & (mid[:, 0] <= nyquist)
    fb[empty, np.abs(freqs[None, :] - mid[empty]).argmin(axis=1)] = 1.0
    return fb.astype(np.float32)


def log_mel(samples: np.ndarray, sample_rate: int, config: LogMelConfig) -> np.ndarray:
    """Mono samples in [-1, 1] -> (n_mels, n_frames) float32 natural-log mel power, centre-cropped or padded."""
    x = np.asarray(samples, np.float64).ravel()
    win = max(8, int(round(sample_rate * config.win_ms / 1000)))
    hop = max(1, int(round(sample_rate * config.hop_ms / 1000)))
    n_fft = max(512, 1 << (win - 1).bit_length())
    need = (config.n_frames - 1) * hop + win  # samples for n_frames frames
    if len(x) > need:
        start = (len(x) - need) // 2
        x = x[start:start + need]
    if len(x) < win:
        x = np.pad(x, (0, win - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, win)[::hop]  # (T, win)
    spec = np.abs(np.fft.rfft(frames * np.hanning(win), n=n_fft, axis=1)) ** 2  # (T, n_fft // 2 + 1)
    fb = mel_filterbank(sample_rate, n_fft, config.n_mels, config.fmin, config.fmax)
    mel = np.log(spec @ fb.T.astype(np.float64) + LOG_FLOOR).T  # (n_mels, T)
    out = np.full((config.n_mels, config.n_frames), math.log(LOG_FLOOR), np.float32)
    t = min(mel.shape[1], config.n_frames)
    out[:, :t] = mel[:, :t]
    return out


def read_wav(data: bytes) -> tuple[np.ndarray, int]:
    """WAV bytes -> (mono float64 samples in [-1, 1], sample rate); raises on a corrupt or empty file."""
    with warnings.catch_warnings():  # WavFileWarning on unknown chunks: the audio itself is fine
        warnings.simplefilter("ignore")
        rate, x = wavfile.read(io.BytesIO(data))
    x = np.asarray(x)
    if x.dtype == np.uint8:
        y = (x.astype(np.float64) - 128.0) / 128.0
    elif x.dtype.kind == "i":
        y = x.astype(np.float64) / float(2 ** (8 * x.dtype.itemsize - 1))
    elif x.dtype.kind == "f":
        y = x.astype(np.float64)
    else:
        raise ValueError(f"unsupported WAV sample type {x.dtype}")
    if y.ndim == 2:
        y = y.mean(axis=1)
    if y.size == 0 or rate <= 0:
        raise ValueError("WAV file holds no samples")
    return np.nan_to_num(np.clip(y, -1.0, 1.0)), int(rate)


def load_audio(paths: Sequence[object], *, config: LogMelConfig | None = None, cache_dir: str | Path | None = None,
               progress: bool = False) -> MediaBatch:
    """Decode WAV files (None / "" = no clip) to (n, 1, n_mels, n_frames) log-mel, cached by content."""
    cfg = config or LogMelConfig()

    def decode(b: bytes) -> np.ndarray:
        x, sr = read_wav(b)
        return log_mel(x, sr, cfg)[None]

    store = EmbeddingStore(cache_dir, f"audio-{cfg.id.replace(':', '_')}")
    return load_media(paths, decoder_id=cfg.id, decode=decode, shape=(1, cfg.n_mels, cfg.n_frames),
                      store=store, what="audio", progress=progress)


class LogMelCNNAudioEncoder(AlignedCNNEncoder):
    """SmallCNN on log-mel spectrograms; aligned to behaviour or random-init + mean log-mel profile."""

    name: ClassVar[str] = "logmel-cnn-audio"
    in_channels: ClassVar[int] = 1
    summary_name: ClassVar[str] = "mean log-mel profile"
    pool: ClassVar[str] = "time"  # keep the frequency axis: pitch lives in which band is loud

    def __init__(self, *, logmel: LogMelConfig | dict[str, Any] | None = None, config: AlignConfig | None = None,
                 seed: int = 0) -> None:
        super().__init__(config=config, seed=seed)
        self.logmel = LogMelConfig(**logmel) if isinstance(logmel, dict) else (logmel or LogMelConfig())

    def settings(self) -> dict[str, object]:
        return {"logmel": asdict(self.logmel)}

    def input_height(self) -> int:
        return self.logmel.n_mels

    def load(self, paths: Sequence[object], *, cache_dir: str | Path | None = None,
             progress: bool = False) -> MediaBatch:
        return load_audio(paths, config=self.logmel, cache_dir=cache_dir, progress=progress)

    def summary(self, inputs: np.ndarray) -> np.ndarray:
        return inputs.mean(axis=3)[:, 0, :]  # (m, 1, n_mels, T) -> (m, n_mels)

