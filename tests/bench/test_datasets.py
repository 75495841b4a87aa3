"""Benchmark data: a missing dataset is a clear skip (exit 0); every dataset kind has a checksum."""

from __future__ import annotations

from pathlib import Path

import pytest

from fusionrec.bench.datasets import dataset_or_skip, dataset_sha256
from tests.bench.fake_catalog import fake_kg_lastfm


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FUSIONREC_DATA", raising=False)


def test_a_missing_dataset_is_a_clear_skip_and_a_present_one_its_folder(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        dataset_or_skip("lastfm-2k", tmp_path)
    assert e.value.code == 0
    err = capsys.readouterr().err
    assert "skipped: lastfm-2k not found" in err and "hetrec2011-lastfm-2k/" in err and "--data-dir" in err
    with pytest.raises(SystemExit):
        dataset_or_skip("lastfm-2k", None)
    (tmp_path / "lastfm-2k").mkdir()  # the second folder name the catalog accepts
    assert dataset_or_skip("lastfm-2k", str(tmp_path)) == tmp_path


def test_catalog_checksum_covers_the_listed_files_in_a_fixed_order(tmp_path: Path) -> None:
    folder = fake_kg_lastfm(tmp_path)
    first = dataset_sha256("kg-lastfm", tmp_path)
    assert first is not None and len(first) == 64
    assert dataset_sha256("kg-lastfm", tmp_path) == first  # deterministic
    (folder / "notes.txt").write_text("not a data file")  # not listed in the catalog: no effect
    assert dataset_sha256("kg-lastfm", tmp_path) == first
    with open(folder / "kg.txt", "a") as fh:  # a listed file changes: the checksum changes
        fh.write("0\tmusic.artist.genre\t1002\n")
    assert dataset_sha256("kg-lastfm", tmp_path) != first
    assert dataset_sha256("kg-lastfm", tmp_path / "nowhere") is None


def test_synthetic_directory_and_generated_data_have_checksums(tmp_path: Path) -> None:
    from dataclasses import replace

    from fusionrec.bench.datasets import config_sha256
    from fusionrec.data.synthetic import SyntheticConfig

    assert dataset_sha256("synthetic") == config_sha256(SyntheticConfig())
    assert config_sha256(replace(SyntheticConfig(), seed=1)) != dataset_sha256("synthetic")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "interactions.csv").write_text("user,item\n1,2\n")
    a = dataset_sha256(tmp_path / "d")
    (tmp_path / "d" / "interactions.csv").write_text("user,item\n1,3\n")
    assert a is not None and dataset_sha256(tmp_path / "d") != a
    assert dataset_sha256("x", generator={"seed": 0, "n": 1}) == dataset_sha256("x", generator={"n": 1, "seed": 0})
