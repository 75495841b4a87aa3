"""The synthetic world: determinism, schema, and that its ground truth really drives the data."""

from __future__ import annotations

import json
import struct
import wave
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusionrec.data import synthetic as syn
from fusionrec.data.schema import Dataset
from fusionrec.data.synthetic import GROUPS, SyntheticConfig, generate, true_utility, write
from fusionrec.errors import DataError

SMALL = SyntheticConfig(n_users=200, n_items=120, media=False)


@pytest.fixture(scope="module")
def small() -> Dataset:
    return generate(SMALL)


def _affinity_gap(ds: Dataset, group: str) -> float:
    """Mean true affinity of chosen items minus that of all items, in one factor group."""
    tr = ds.meta["truth"]
    aff = tr[f"user_{group}"] @ tr[f"item_{group}"].T
    u, i = ds.interactions["user"].to_numpy(), ds.interactions["item"].to_numpy()
    return float(aff[u, i].mean() - aff.mean())


def _unit_prefs(ds: Dataset) -> np.ndarray:
    p = np.concatenate([ds.meta["truth"][f"user_{g}"] for g in GROUPS], axis=1)
    return p / np.linalg.norm(p, axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------- config
@pytest.mark.parametrize(("kwargs", "match"), [
    ({"n_users": 0}, r"n_users must be >= 2, got 0"),
    ({"noise": 0.0}, r"noise must be > 0.0"),
    ({"signal": ("smell",)}, r"signal must be a non-empty tuple .*'smell'"),
    ({"signal": ()}, r"signal must be"),
    ({"image_dim": 9}, r"image_dim must be in \[1, 5\], got 9"),
    ({"min_events": 500}, r"min_events \(500\) must be <= n_items"),
    ({"n_friends": 200, "n_users": 100}, r"n_friends must be"),
    ({"mean_events": 2.0}, r"mean_events must be >= min_events"),
    ({"n_items": 3.5}, r"n_items must be an integer"),
    ({"creator_share": 1.5}, r"creator_share must be >= 0.0 and <= 1.0"),
])
def test_bad_config_is_a_clear_value_error(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SyntheticConfig(**kwargs)  # type: ignore[arg-type]


def test_config_round_trips_through_a_dict() -> None:
    cfg = SyntheticConfig(n_users=10, signal=["image", "text"])  # type: ignore[arg-type]
    assert cfg.signal == ("image", "text")
    assert SyntheticConfig(**cfg.to_dict()) == cfg  # type: ignore[arg-type]
    assert json.loads(json.dumps(cfg.to_dict()))["signal"] == ["image", "text"]


def test_generate_rejects_a_non_config() -> None:
    with pytest.raises(ValueError, match="needs a SyntheticConfig"):
        generate({"n_users": 5})  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------- shape
def test_same_seed_same_frames_other_seed_other_frames(small: Dataset) -> None:
    again = generate(SMALL)
    for table in ("interactions", "items", "users", "social", "kg", "item_entities"):
        pd.testing.assert_frame_equal(getattr(small, table), getattr(again, table))
    for key, arr in small.meta["truth"].items():
        if key != "config":
            np.testing.assert_array_equal(arr, again.meta["truth"][key])
    other = generate(SyntheticConfig(n_users=200, n_items=120, media=False, seed=1))
    assert not small.interactions.equals(other.interactions)


def test_threads_do_not_change_the_world(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(syn, "_BUDGET", 50 * 128)  # 50 users per batch: 4 batches
    two = generate(SMALL)
    monkeypatch.setattr(syn, "_WORKERS", 1)
    pd.testing.assert_frame_equal(two.interactions, generate(SMALL).interactions)


def test_shapes_schema_and_ids(small: Dataset) -> None:
    assert small.name == "synthetic"
    assert (small.n_users, small.n_items) == (200, 120)
    assert small.item_schema == {"title": "text", "description": "text", "genre": "categorical",
                                 "tags": "multi", "price": "numeric"}
    assert small.user_schema == {"age": "numeric", "region": "categorical"}
    assert list(small.interactions.columns) == ["user", "item", "timestamp", "rating"]
    assert small.user_ids.ids[7] == "u007" and small.item_ids.ids[7] == "i007"  # dense index k is raw k
    assert all(v for k, v in small.sources().items() if k != "side_events")  # the world has no side events
    inter = small.interactions
    assert set(np.unique(inter["rating"])) == {1.0, 2.0, 3.0, 4.0, 5.0}
    per_user = inter.groupby("user").size()
    assert len(per_user) == 200 and per_user.min() >= SMALL.min_events
    assert 20 < per_user.mean() < 40
    assert not inter.duplicated(["user", "item"]).any()  # sampled without replacement
    assert small.items["tags"].str.split("|").str.len().between(1, 3).all()
    assert small.items["price"].gt(0).all()
    assert set(small.kg["relation"]) == {"has_genre", "has_tag", "by_artist"}
    assert small.item_entities["entity"].isin(small.kg["head"]).all()
    tr = small.meta["truth"]
    for g, d in SMALL.dims().items():
        assert tr[f"item_{g}"].shape == (120, d) and tr[f"user_{g}"].shape == (200, d)
    assert tr["config"] == SMALL.to_dict()


def test_timestamps_increase_within_each_user(small: Dataset) -> None:
    inter = small.interactions
    assert inter["user"].is_monotonic_increasing
    same_user = inter["user"].to_numpy()[1:] == inter["user"].to_numpy()[:-1]
    assert (np.diff(inter["timestamp"].to_numpy())[same_user] > 0).all()
    lo, hi = SMALL.start_time, SMALL.start_time + SMALL.span_days * 86400 + SMALL.max_events
    assert inter["timestamp"].between(lo, hi).all()


def test_text_words_spell_out_the_text_factors(small: Dataset) -> None:
    pole = {0: -2, 1: -1, 2: 1, 3: 2}
    word_level = {w: (axis, pole[p]) for axis, poles in enumerate(syn.TEXT_AXES)
                  for p, words in enumerate(poles) for w in words}
    levels = small.meta["truth"]["item_text_levels"]
    for i, desc in enumerate(small.items["description"]):
        found = np.zeros(SMALL.text_dim, dtype=int)
        for w in desc.rstrip(".").replace(",", " ").split():
            if w in word_level:
                axis, lev = word_level[w]
                found[axis] = lev
        np.testing.assert_array_equal(found, levels[i])


# ---------------------------------------------------------------------------------------- truth
def test_chosen_items_have_higher_true_utility(small: Dataset) -> None:
    inter = small.interactions
    u, i = inter["user"].to_numpy(), inter["item"].to_numpy()
    util = true_utility(small.meta["truth"], t=0.5)
    assert util.shape == (200, 120)
    assert util[u, i].mean() > util.mean() + 1.5
    for g in GROUPS:  # every group of the full world matters
        assert _affinity_gap(small, g) > 0.4
    aff = true_utility(small.meta["truth"], popularity=False)[u, i]
    assert np.corrcoef(aff, inter["rating"])[0, 1] > 0.3  # ratings follow the affinity


def test_single_modality_world_uses_only_that_modality(small: Dataset) -> None:
    cfg = SyntheticConfig(n_users=200, n_items=120, media=False, signal=("image",))
    image_only = generate(cfg)
    assert not image_only.interactions.equals(small.interactions)
    np.testing.assert_array_equal(image_only.meta["truth"]["item_image"], small.meta["truth"]["item_image"])
    assert image_only.meta["truth"]["signal_weights"].tolist()[0] == 0.0
    assert _affinity_gap(image_only, "image") > 1.0
    for g in ("text", "audio", "attrs"):
        assert abs(_affinity_gap(image_only, g)) < 0.2


def test_friends_have_similar_preferences(small: Dataset) -> None:
    s = small.social
    assert len(s) > 0 and not (s["user"] == s["friend"]).any()
    pairs = set(zip(s["user"], s["friend"], strict=True))
    assert all((f, u) in pairs for u, f in pairs)  # mutual
    p = _unit_prefs(small)
    friend_cos = (p[s["user"]] * p[s["friend"]]).sum(axis=1).mean()
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 200, 5000), rng.integers(0, 200, 5000)
    random_cos = (p[a] * p[b]).sum(axis=1).mean()
    assert friend_cos > random_cos + 0.15
    flat = generate(SyntheticConfig(n_users=200, n_items=120, media=False, homophily=0.0))
    q = _unit_prefs(flat)
    flat_cos = (q[flat.social["user"]] * q[flat.social["friend"]]).sum(axis=1).mean()
    assert flat_cos < friend_cos - 0.1


@pytest.mark.parametrize("noise", [1.0, 0.3])
def test_sampler_matches_brute_force_gumbel_top_k(noise: float) -> None:
    """The lazy sampler (most noise never drawn) has the law of a full Gumbel-top-k with drift."""
    rng = np.random.default_rng(0)
    n, rows = 700, 3000
    n_pad = -(-n // syn._BLOCK) * syn._BLOCK
    lo = (2.0 * rng.standard_normal(n)).astype(np.float32)
    hi = (lo + 1.5 * rng.standard_normal(n)).astype(np.float32)
    U_lo, U_hi = (np.full((rows, n_pad), -1e30, np.float32) for _ in range(2))
    U_lo[:, :n], U_hi[:, :n] = lo, hi
    seg_k, frac = np.tile([4, 6], (rows, 1)), np.tile([0.0, 1.0], (rows, 1))
    picks = syn._choose(np.random.default_rng(1), U_lo, U_hi, n, frac, seg_k, noise)
    g = noise * np.random.default_rng(2).gumbel(size=(rows, n))
    first = np.argsort(-(lo + g), axis=1)[:, :4]
    key = hi + g
    np.put_along_axis(key, first, -np.inf, axis=1)
    second = np.argsort(-key, axis=1)[:, :6]
    for got, want in ((picks[0], first), (picks[1], second)):
        assert (got >= 0).all() and (got < n).all()
        f_got = np.bincount(got.ravel(), minlength=n) / rows
        f_want = np.bincount(want.ravel(), minlength=n) / rows
        pooled = (f_got + f_want) / 2
        z = (f_got - f_want) / np.sqrt(np.maximum(pooled * (1 - pooled), 1 / rows) * 2 / rows)
        assert np.abs(z).max() < 4.5
        assert (z[pooled > 0] ** 2).mean() < 1.3  # chi-square per degree of freedom, about 1 if equal
    both = np.concatenate([picks[0], picks[1]], axis=1)
    assert (np.sort(both, axis=1)[:, 1:] != np.sort(both, axis=1)[:, :-1]).all()  # no repeats


# ---------------------------------------------------------------------------------------- media
def _png_size(path: Path) -> tuple[int, int, bytes]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, size = 8, b"", (0, 0)
    while pos < len(data):
        (length,), tag = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(tag + body)
        if tag == b"IHDR":
            size = struct.unpack(">II", body[:8])
        elif tag == b"IDAT":
            idat += body
        pos += 12 + length
    return size[0], size[1], zlib.decompress(idat)


def test_media_files_exist_and_decode(tmp_path: Path) -> None:
    cfg = SyntheticConfig(n_users=20, n_items=12, image_size=24, audio_seconds=0.25, sample_rate=8000)
    ds = generate(cfg, media_dir=tmp_path)
    assert ds.item_schema["image"] == "image" and ds.item_schema["audio"] == "audio"
    assert ds.meta["media_dir"] == str(tmp_path.resolve())
    pixels = []
    for item, img, aud in zip(ds.item_ids.ids, ds.items["image"], ds.items["audio"], strict=True):
        assert Path(img).is_absolute() and Path(img) == tmp_path.resolve() / "images" / f"{item}.png"
        w, h, raw = _png_size(Path(img))
        assert (w, h) == (24, 24) and len(raw) == 24 * (1 + 24 * 3)
        pixels.append(np.frombuffer(raw, np.uint8).reshape(24, -1)[:, 1:])
        with wave.open(aud, "rb") as f:
            assert (f.getnchannels(), f.getsampwidth(), f.getframerate(), f.getnframes()) == (1, 2, 8000, 2000)
            assert np.abs(np.frombuffer(f.readframes(2000), "<i2")).max() > 1000
    assert len({p.tobytes() for p in pixels}) == 12
    # the picture carries the image factors: brighter items have brighter shapes
    props = ds.meta["truth"]["item_image_props"]
    centre = np.array([p.reshape(24, 24, 3)[10:14, 10:14].max(axis=2).mean() for p in pixels])
    assert np.corrcoef(centre, props[:, 1])[0, 1] > 0.5


def test_write_png_round_trips(tmp_path: Path) -> None:
    img = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    syn._write_png(tmp_path / "x.png", img)
    w, h, raw = _png_size(tmp_path / "x.png")
    assert (w, h) == (7, 5)
    np.testing.assert_array_equal(np.frombuffer(raw, np.uint8).reshape(5, 22)[:, 1:].reshape(5, 7, 3), img)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        syn._write_png(tmp_path / "y.png", img[..., 0])


# ---------------------------------------------------------------------------------------- write
def test_write_produces_a_loadable_directory(tmp_path: Path) -> None:
    from fusionrec.data.io import load_directory

    cfg = SyntheticConfig(n_users=30, n_items=16, image_size=16, audio_seconds=0.1)
    calls: list[tuple[int, int]] = []
    out = write(cfg, tmp_path / "world", progress=lambda d, t: calls.append((d, t)))
    assert out == tmp_path / "world"
    assert calls[-1] == (46, 46) and all(a[0] <= b[0] for a, b in zip(calls, calls[1:], strict=False))
    names = {p.name for p in out.iterdir()}
    assert names == {"interactions.tsv", "items.tsv", "users.tsv", "social.tsv", "kg.tsv", "item_entities.tsv",
                     "schema.json", "truth.npz", "truth.json", "images", "audio"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dir left over
    schema = json.loads((out / "schema.json").read_text())
    assert schema == {"items": {"title": "text", "description": "text", "genre": "categorical", "tags": "multi",
                                "price": "numeric", "image": "image", "audio": "audio"},
                      "users": {"age": "numeric", "region": "categorical"}}
    items = pd.read_csv(out / "items.tsv", sep="\t", dtype=str)
    assert items["image"].iloc[0] == "images/i00.png" and items["audio"].iloc[0] == "audio/i00.wav"
    assert json.loads((out / "truth.json").read_text()) == cfg.to_dict()
    ref = generate(cfg, media_dir=tmp_path / "ref")
    with np.load(out / "truth.npz", allow_pickle=False) as npz:
        truth = dict(npz)
    assert set(truth) == {k for k in ref.meta["truth"] if k != "config"}
    np.testing.assert_array_equal(truth["item_image"], ref.meta["truth"]["item_image"])
    np.testing.assert_allclose(true_utility(truth, [0, 1]), true_utility(ref.meta["truth"], [0, 1]))

    loaded = load_directory(out)
    assert (loaded.n_users, loaded.n_items, loaded.n_interactions) == (ref.n_users, ref.n_items, ref.n_interactions)
    np.testing.assert_array_equal(loaded.interactions["item"], ref.interactions["item"])
    np.testing.assert_array_equal(loaded.interactions["rating"], ref.interactions["rating"])
    assert loaded.item_schema == ref.item_schema
    assert Path(loaded.items["image"].iloc[3]) == (out / "images" / "i03.png").resolve()
    assert len(loaded.social) == len(ref.social) and len(loaded.kg) == len(ref.kg)


def test_write_refuses_a_non_empty_directory_unless_told(tmp_path: Path) -> None:
    cfg = SyntheticConfig(n_users=10, n_items=8, media=False)
    (tmp_path / "empty").mkdir()
    write(cfg, tmp_path / "empty")  # an empty directory is fine
    with pytest.raises(DataError, match="already exists and is not empty; pass overwrite=True"):
        write(cfg, tmp_path / "empty")
    write(SyntheticConfig(n_users=12, n_items=8, media=False), tmp_path / "empty", overwrite=True)
    assert pd.read_csv(tmp_path / "empty" / "users.tsv", sep="\t")["user"].nunique() == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]
