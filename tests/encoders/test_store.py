"""EmbeddingStore: content keys, round trip, persistence, a damaged file."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from fusionrec.encoders.store import EmbeddingStore, content_key, namespace_for, resolve_cache_dir


def test_content_key_is_deterministic_and_depends_on_encoder_and_content() -> None:
    k = content_key("enc-v1", "hello")
    assert len(k) == 16 and k == content_key("enc-v1", b"hello")
    assert k != content_key("enc-v2", "hello") and k != content_key("enc-v1", "hello!")


def test_round_trip_and_persistence(tmp_path) -> None:
    store = EmbeddingStore(tmp_path, "t")
    keys = [content_key("e", s) for s in ("a", "b", "c")]
    vecs = np.arange(12, dtype=np.float32).reshape(3, 4)
    store.put_many(keys[:2], vecs[:2])
    got, found = store.get_many(keys)
    assert found.tolist() == [True, True, False]
    np.testing.assert_array_equal(got[:2], vecs[:2])
    np.testing.assert_array_equal(got[2], 0)
    # a second store on the same file sees them; a put adds and overwrites
    other = EmbeddingStore(tmp_path, "t")
    other.put_many([keys[2], keys[0]], np.stack([vecs[2], -vecs[0]]))
    assert len(other) == 3
    got, found = store.get_many(np.frombuffer(b"".join(keys), np.uint8).reshape(3, 16))  # re-reads the file
    assert found.all()
    np.testing.assert_array_equal(got, np.stack([-vecs[0], vecs[1], vecs[2]]))
    assert (tmp_path / "t.safetensors").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["t.safetensors"]  # no temporary file left


def test_float16_and_width_mismatch(tmp_path) -> None:
    store = EmbeddingStore(tmp_path, "px")
    store.put_many([content_key("e", "x")], np.ones((1, 3), np.float16))
    got, _ = store.get_many([content_key("e", "x")])
    assert got.dtype == np.float16
    with pytest.raises(ValueError, match="width 3"):
        store.put_many([content_key("e", "y")], np.ones((1, 5), np.float16))


def test_bad_inputs(tmp_path) -> None:
    with pytest.raises(ValueError, match="namespace"):
        EmbeddingStore(tmp_path, "../escape")
    store = EmbeddingStore(tmp_path, "t")
    with pytest.raises(ValueError, match="16 bytes"):
        store.get_many([b"short"])
    with pytest.raises(ValueError, match="n_keys=1"):
        store.put_many([content_key("e", "x")], np.ones((2, 3), np.float32))


def test_damaged_file_is_rebuilt_with_a_log_line(tmp_path, caplog) -> None:
    (tmp_path / "t.safetensors").write_bytes(b"garbage")
    store = EmbeddingStore(tmp_path, "t")
    with caplog.at_level(logging.WARNING, logger="fusionrec.encoders.store"):
        _, found = store.get_many([content_key("e", "x")])
    assert not found.any() and "unreadable" in caplog.text
    store.put_many([content_key("e", "x")], np.ones((1, 2), np.float32))
    assert EmbeddingStore(tmp_path, "t").get_many([content_key("e", "x")])[1].all()


def test_default_root_reads_fusionrec_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FUSIONREC_CACHE", str(tmp_path / "c"))
    assert resolve_cache_dir(None) == tmp_path / "c"
    assert resolve_cache_dir(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("FUSIONREC_CACHE")
    assert resolve_cache_dir(None).parts[-2:] == (".cache", "fusionrec")


def test_namespace_for_is_file_safe() -> None:
    ns = namespace_for("text", "st:/some/odd path:abc")
    EmbeddingStore("/nonexistent-root", ns)  # a valid namespace; nothing is written
    assert ns.startswith("text-") and "/" not in ns
