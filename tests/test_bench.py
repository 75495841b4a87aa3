"""Benchmark helpers: a benchmark without its dataset says what is missing and exits 0."""

from __future__ import annotations

import pytest

from fusionrec.bench import dataset_or_skip


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
