"""item_content / user_content / extend_items on a small multimodal dataset made here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fusionrec.data.schema import Dataset
from fusionrec.encoders import ENCODERS, ContentFeatures, extend_items, item_content, user_content
from fusionrec.encoders import image as image_mod
from fusionrec.encoders.media import AlignConfig
from fusionrec.errors import DataError, UnknownNameError

from .media_files import write_corrupt, write_image, write_tone

N = 24
FAST = AlignConfig(epochs=3, batch_size=16, width=8)


def make_items(folder, n: int = N, start: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(start)
    rows = []
    for i in range(start, start + n):
        img = write_image(folder / f"{i}.png", tuple(rng.random(3)), size=12, seed=i)
        wav = write_tone(folder / f"{i}.wav", 200 + 30 * i, seconds=0.2)
        rows.append({"item": f"i{i}", "title": f"Movie {i}", "description": "" if i % 5 == 0 else f"about {i % 3}",
                     "genre": ["drama", "comedy", "horror"][i % 3], "tags": "a|b" if i % 2 else "c",
                     "year": 1990 + i, "poster": str(img), "clip": str(wav)})
    items = pd.DataFrame(rows)
    if start == 0:
        items.loc[1, "poster"] = str(write_corrupt(folder / "bad.png"))
        items.loc[2, "poster"] = str(folder / "missing.png")
        items.loc[3, "poster"] = None
        items.loc[4, "clip"] = None
    return items


SCHEMA = {"title": "text", "description": "text", "genre": "categorical", "tags": "multi", "year": "numeric",
          "poster": "image", "clip": "audio"}


def build(items: pd.DataFrame, schema: dict[str, str]) -> Dataset:
    inter = pd.DataFrame({"user": [f"u{k % 5}" for k in range(3 * N)], "item": [f"i{k % N}" for k in range(3 * N)]})
    users = pd.DataFrame({"user": ["u0", "u1", "u2", "u3"], "age": [20, 30, None, 40],
                          "gender": ["f", "m", "f", None]})
    return Dataset.from_frames(inter, items=items, users=users, item_schema=schema,
                               user_schema={"age": "numeric", "gender": "categorical"})


@pytest.fixture()
def dataset(tmp_path) -> Dataset:
    return build(make_items(tmp_path), SCHEMA)


def test_registry_names() -> None:
    assert set(ENCODERS) == {"minilm", "hashed", "cnn-image", "torchvision-image", "logmel-cnn-audio"}


def test_item_content_shapes_presence_and_info(dataset, tmp_path) -> None:
    beh = np.random.default_rng(0).normal(size=(N, 6)).astype(np.float32)
    beh[20:] = 0  # cold items
    f = item_content(dataset, text_encoder="hashed", cache_dir=tmp_path / "cache", behaviour=beh, align=FAST)
    assert f.n == N and set(f.vectors) == {"text", "image", "audio"}
    assert f.dims == {"text": 512, "image": 6, "audio": 6}
    for m, v in f.vectors.items():
        assert v.dtype == np.float32 and f.present[m].dtype == bool and len(f.present[m]) == N
        assert (v[~f.present[m]] == 0).all()
    assert f.present["image"][:5].tolist() == [True, False, False, False, True]
    assert f.present["audio"][4] == np.False_ and f.present["text"].all()
    assert f.info["text"] == "hashed" and "aligned" in f.info["image"]
    assert f.info["missing"]["image"] == 3 and f.info["corrupt"]["image"] == 1
    assert f.info["reports"]["image"]["missing_examples"] == [str(tmp_path / "missing.png")]
    assert f.vocab["genre"] == ["comedy", "drama", "horror"] and f.cardinality("genre") == 4  # ties by value
    assert f.categorical["genre"][:3].tolist() == [2, 1, 3]
    assert f.multi["tags"][0][-1] == len(f.multi["tags"][1])
    assert f.numeric.shape == (N, 1) and abs(float(f.numeric.mean())) < 1e-5
    assert f.sources == {"text": ["title", "description"], "image": ["poster"], "audio": ["clip"]}


def test_text_columns_are_joined(dataset, tmp_path, monkeypatch) -> None:
    seen: list[str] = []
    real = ENCODERS["hashed"].encode
    monkeypatch.setattr(ENCODERS["hashed"], "encode", lambda self, t: seen.extend(t) or real(self, t))
    item_content(dataset, modalities=["text"], text_encoder="hashed")
    assert "Movie 0" in seen and "Movie 1. about 1" in seen


def test_second_call_decodes_nothing(dataset, tmp_path, monkeypatch) -> None:
    first = item_content(dataset, text_encoder="hashed", cache_dir=tmp_path / "cache", modalities=["image"])
    calls = []
    real = image_mod.decode_image
    monkeypatch.setattr(image_mod, "decode_image", lambda b, s: calls.append(1) or real(b, s))
    second = item_content(dataset, text_encoder="hashed", cache_dir=tmp_path / "cache", modalities=["image"])
    assert calls == [] and second.info["reports"]["image"]["decoded"] == 0
    np.testing.assert_array_equal(first.vectors["image"], second.vectors["image"])


def test_modalities_selection_and_errors(dataset) -> None:
    f = item_content(dataset, modalities=["attributes"])
    assert f.vectors == {} and set(f.categorical) == {"genre"} and set(f.multi) == {"tags"}
    with pytest.raises(ValueError, match="unknown modality 'video'"):
        item_content(dataset, modalities=["video"])
    with pytest.raises(ValueError, match=r"behaviour must be an \(n_items=24, d\)"):
        item_content(dataset, modalities=["image"], behaviour=np.zeros((3, 2)))
    with pytest.raises(UnknownNameError, match="cnn-image"):
        item_content(dataset, modalities=["image"], image_encoder="vit")

def test_a_modality_the_items_lack_is_an_error(tmp_path) -> None:
    no_audio = build(make_items(tmp_path).drop(columns=["clip"]), {k: v for k, v in SCHEMA.items() if k != "clip"})
    with pytest.raises(DataError, match="no audio column"):
        item_content(no_audio, modalities=["audio"])


def test_state_round_trip_and_extend_items(dataset, tmp_path) -> None:
    beh = np.random.default_rng(0).normal(size=(N, 4)).astype(np.float32)
    f = item_content(dataset, text_encoder="hashed", cache_dir=tmp_path / "cache", behaviour=beh, align=FAST)
    g = ContentFeatures.load(f.save(tmp_path / "content"))
    for m in f.vectors:
        np.testing.assert_array_equal(g.vectors[m], f.vectors[m])
        np.testing.assert_array_equal(g.present[m], f.present[m])
    np.testing.assert_array_equal(g.multi["tags"][1], f.multi["tags"][1])
    assert g.vocab == f.vocab and g.numeric_stats == f.numeric_stats and g.info == f.info
    # cold items: the same rows re-encoded give the same features; new rows reuse vocab and CNNs
    old = dataset.items.iloc[5:8]
    new = pd.concat([old, make_items(tmp_path, n=2, start=100).drop(columns=["item"])], ignore_index=True)
    new.loc[4, "genre"] = "western"
    e = extend_items(g, new, cache_dir=tmp_path / "cache")
    assert e.n == 5 and e.vocab == f.vocab and e.dims == f.dims
    for m in f.vectors:
        np.testing.assert_allclose(e.vectors[m][:3], f.vectors[m][5:8], atol=1e-6)
    assert e.categorical["genre"].tolist()[3:] == [f.vocab["genre"].index("comedy") + 1, 0]  # item 100, western
    np.testing.assert_array_equal(e.numeric[:3], f.numeric[5:8])
    both = f.append(e)
    assert both.n == N + 5 and both.multi["tags"][0][-1] == len(both.multi["tags"][1])
    np.testing.assert_array_equal(both.vectors["image"][N:], e.vectors["image"])
    # a state without rows still extends
    light = ContentFeatures.from_state(*f.to_state(rows=False))
    assert light.n == 0
    np.testing.assert_array_equal(extend_items(light, new, cache_dir=tmp_path / "cache").vectors["audio"],
                                  e.vectors["audio"])


def test_user_content_and_vocab_reuse(dataset) -> None:
    u = user_content(dataset)
    assert u.n == dataset.n_users and u.vectors == {}
    raw = dataset.user_ids.raw(np.arange(dataset.n_users))
    codes = dict(zip(raw, u.categorical["gender"].tolist(), strict=True))
    assert codes["u0"] == codes["u2"] != codes["u1"] and codes["u3"] == 0 and codes["u4"] == 0
    assert u.numeric_missing[:, 0].sum() == 2  # u2 (None) and u4 (no profile row)
    again = user_content(dataset, vocab={"gender": ["m"]})
    assert again.vocab["gender"] == ["m"]
    assert again.categorical["gender"].tolist() == [1 if codes[r] == u.vocab["gender"].index("m") + 1 else 0
                                                    for r in raw]


def test_a_media_column_without_any_usable_file_gives_absent_rows(tmp_path) -> None:
    items = make_items(tmp_path)
    items["poster"] = None
    items["clip"] = str(tmp_path / "nowhere.wav")
    beh = np.ones((N, 3), np.float32)
    f = item_content(build(items, SCHEMA), modalities=["image", "audio"], behaviour=beh, cache_dir=tmp_path / "c")
    assert not f.present["image"].any() and not f.present["audio"].any()
    assert (f.vectors["image"] == 0).all() and f.vectors["audio"].shape[0] == N
    assert f.info["missing"] == {"image": N, "audio": N}


def test_progress_bars_for_long_steps(tmp_path) -> None:
    from fusionrec.encoders.text import HashedTextEncoder, encode_texts

    v, present, _ = encode_texts(HashedTextEncoder(), [f"title {i}" for i in range(1001)], progress=True)
    assert v.shape == (1001, 512) and present.all()
