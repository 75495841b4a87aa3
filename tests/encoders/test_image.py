"""Images: decoding with missing / corrupt files, the pixel cache, and a CNN aligned to behaviour."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from fusionrec.encoders import image as image_mod
from fusionrec.encoders.image import CNNImageEncoder, colour_histogram, decode_image, load_images
from fusionrec.encoders.media import AlignConfig

from .media_files import write_corrupt, write_image


def test_decode_png_jpeg_and_rgba(tmp_path) -> None:
    from PIL import Image

    png = write_image(tmp_path / "red.png", (1.0, 0.0, 0.0), size=20)
    jpg = write_image(tmp_path / "blue.jpg", (0.0, 0.0, 1.0), size=40)
    Image.new("RGBA", (10, 10), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    Image.new("L", (10, 10), 128).save(tmp_path / "grey.png")
    r = decode_image(png.read_bytes(), 8)
    b = decode_image(jpg.read_bytes(), 8)
    assert r.shape == (3, 8, 8) and r.dtype == np.float32
    assert r[0].mean() > 0.9 and r[2].mean() < 0.1 and b[2].mean() > 0.85 and b[0].mean() < 0.15
    np.testing.assert_allclose(decode_image((tmp_path / "clear.png").read_bytes(), 4), 1.0)  # on white
    np.testing.assert_allclose(decode_image((tmp_path / "grey.png").read_bytes(), 4), 128 / 255, atol=1e-6)


def test_missing_and_corrupt_files_are_marked_absent_and_reported(tmp_path, caplog) -> None:
    ok = write_image(tmp_path / "ok.png", (0.2, 0.6, 0.2))
    bad = write_corrupt(tmp_path / "bad.jpg")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(write_image(tmp_path / "full.jpg", (0.5, 0.5, 0.5), size=64).read_bytes()[:200])
    paths = [str(ok), str(bad), str(tmp_path / "gone.png"), None, float("nan"), "", str(truncated), str(ok)]
    with caplog.at_level(logging.WARNING, logger="fusionrec.encoders.media"):
        batch = load_images(paths, image_size=8, cache_dir=tmp_path / "cache")
    assert batch.present.tolist() == [True, False, False, False, False, False, False, True]
    assert batch.inputs.shape == (2, 3, 8, 8)
    rep = batch.report()
    assert rep["missing_files"] == 1 and rep["corrupt"] == 2 and rep["no_input"] == 3
    assert rep["decoded"] == 3  # the two rows with ok.png share one decode; two corrupt contents tried
    again = load_images(paths, image_size=8, cache_dir=tmp_path / "cache")
    assert again.decoded == 0 and again.cached == 3  # corrupt contents are remembered too
    assert again.present.tolist() == batch.present.tolist() and len(again.corrupt) == 2
    np.testing.assert_array_equal(again.inputs, batch.inputs)  # float16 values on both calls
    assert "1 missing and 2 corrupt" in caplog.text and "gone.png" in caplog.text and "bad.jpg" in caplog.text


def test_second_load_decodes_nothing(tmp_path, monkeypatch) -> None:
    paths = [str(write_image(tmp_path / f"{i}.png", (i / 4, 0.5, 1 - i / 4), seed=i)) for i in range(4)]
    first = load_images(paths, image_size=8, cache_dir=tmp_path / "cache")
    calls = []
    real = image_mod.decode_image
    monkeypatch.setattr(image_mod, "decode_image", lambda b, s: calls.append(1) or real(b, s))
    second = load_images(paths, image_size=8, cache_dir=tmp_path / "cache")
    assert calls == [] and second.cached == 4 and second.decoded == 0
    np.testing.assert_array_equal(second.inputs, first.inputs)
    # the key is the file's content: a renamed copy is a cache hit, a changed file is not
    (tmp_path / "copy.png").write_bytes((tmp_path / "0.png").read_bytes())
    write_image(tmp_path / "1.png", (0.9, 0.1, 0.1), seed=9)
    load_images([str(tmp_path / "copy.png"), paths[1]], image_size=8, cache_dir=tmp_path / "cache")
    assert len(calls) == 1


def test_colour_histogram() -> None:
    px = np.zeros((2, 3, 4, 4), np.float32)
    px[1, 0] = 1.0  # red channel saturated
    h = colour_histogram(px)
    assert h.shape == (2, 24)
    np.testing.assert_allclose(h.reshape(2, 3, 8).sum(axis=2), 1.0)
    assert h[0, 0] == 1.0 and h[1, 7] == 1.0 and h[1, 8] == 1.0


def colour_world(n: int = 120, d: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pictures whose colour determines the behaviour vector: behaviour = W @ (rgb - 0.5)."""
    rng = np.random.default_rng(seed)
    rgb = rng.random((n, 3))
    pixels = np.clip(rgb[:, :, None, None] + rng.normal(0, 0.03, (n, 3, 16, 16)), 0, 1).astype(np.float32)
    w = rng.normal(size=(3, d))
    return pixels, ((rgb - 0.5) @ w).astype(np.float32)


def mean_cos(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(1).mean())


def test_cnn_aligned_to_behaviour_recovers_it_on_held_out_items() -> None:
    pixels, beh = colour_world()
    train, held = np.arange(100), np.arange(100, 120)
    enc = CNNImageEncoder(image_size=16, config=AlignConfig(epochs=30, batch_size=32), seed=0)
    enc.fit(pixels[train], beh[train])
    assert enc.mode_ == "aligned" and enc.out_dim == 8
    v = enc.encode(pixels[held])
    target = beh[held] / np.linalg.norm(beh[held], axis=1, keepdims=True) - enc.target_mean_  # centred direction
    got = mean_cos(v, target)
    shuffled = mean_cos(v, target[np.random.default_rng(1).permutation(len(held))])
    # seeds 0-9 at 1 thread and 0-4 at 2 threads: cosine 0.990-0.993, shuffled -0.06 to -0.03
    assert got > 0.8 and got > shuffled + 0.5, (got, shuffled, enc.report_)
    # seeded: the same fit gives the same vectors; the state round-trips
    again = CNNImageEncoder(image_size=16, config=AlignConfig(epochs=30, batch_size=32), seed=0)
    np.testing.assert_array_equal(again.fit(pixels[train], beh[train]).encode(pixels[held]), v)
    arrays, meta = enc.to_state()
    np.testing.assert_array_equal(CNNImageEncoder.from_state(arrays, meta).encode(pixels[held]), v)


def test_untrained_mode_is_deterministic_and_colour_aware() -> None:
    pixels, _ = colour_world(n=30)
    enc = CNNImageEncoder(image_size=16).fit(pixels)
    v = enc.encode(pixels)
    assert enc.mode_ == "random" and v.shape == (30, 64 + 24)
    np.testing.assert_array_equal(v, CNNImageEncoder(image_size=16).fit(pixels).encode(pixels))
    few = np.zeros((30, 8), np.float32)
    few[:3] = 1.0  # too few items with behaviour: falls back to untrained features
    assert CNNImageEncoder(image_size=16).fit(pixels, few).mode_ == "random"


def test_torchvision_backbone_from_local_weights(tmp_path) -> None:
    torchvision = pytest.importorskip("torchvision", reason="torchvision is optional (pip install torchvision)")
    from safetensors.torch import save_file

    from fusionrec.encoders.image import TorchvisionImageEncoder

    weights = tmp_path / "resnet18.safetensors"
    save_file(torchvision.models.resnet18(weights=None).state_dict(), str(weights))
    enc = TorchvisionImageEncoder(weights=weights, image_size=32).fit(np.zeros((0, 3, 32, 32), np.float32))
    v = enc.encode(np.random.default_rng(0).random((2, 3, 32, 32)).astype(np.float32))
    assert v.shape == (2, 512)


def test_torchvision_encoder_says_how_to_install_when_absent(tmp_path) -> None:
    import importlib.util

    if importlib.util.find_spec("torchvision") is not None:
        pytest.skip("torchvision is installed")
    from fusionrec.encoders.image import TorchvisionImageEncoder

    with pytest.raises(ImportError, match="pip install torchvision"):
        TorchvisionImageEncoder(weights=tmp_path / "w.safetensors")
