"""Small media files written by the tests: PNG / JPEG pictures and WAV tones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import wavfile


def write_image(path: Path, rgb: tuple[float, float, float], size: int = 16, seed: int = 0) -> Path:
    """A flat-colour picture (values in [0, 1]) with a little noise, saved as PNG or JPEG by suffix."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    arr = np.clip(np.asarray(rgb)[None, None, :] + rng.normal(0, 0.02, (size, size, 3)), 0, 1)
    Image.fromarray((arr * 255).astype(np.uint8), "RGB").save(path)
    return path


def write_tone(path: Path, freq: float, seconds: float = 0.5, rate: int = 8000, dtype: str = "int16") -> Path:
    """A sine tone as a mono WAV file of ``dtype`` samples."""
    t = np.arange(int(seconds * rate)) / rate
    x = 0.5 * np.sin(2 * np.pi * freq * t)
    data = (x * 32767).astype(np.int16) if dtype == "int16" else x.astype(np.float32)
    wavfile.write(path, rate, data)
    return path


def write_corrupt(path: Path) -> Path:
    path.write_bytes(b"this is not a picture nor a sound" * 10)
    return path
