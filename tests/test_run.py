"""Runs: saved atomically, loaded with identical scores; a crash never damages the previous run."""

from __future__ import annotations

import numpy as np
import pytest

from fusionrec.jobs import build_model, train_run
from fusionrec.run import Run, atomic_write_dir


def test_save_load_identical(tmp_path, tiny_dataset) -> None:
    run = train_run(build_model("ease"), tiny_dataset)
    run.save(tmp_path / "r")
    back = Run.load(tmp_path / "r")
    users = np.arange(tiny_dataset.n_users)
    np.testing.assert_array_equal(back.model.score(users), run.model.score(users))
    assert back.user_ids == run.user_ids and back.item_ids == run.item_ids


def test_crash_while_saving_keeps_the_old_run(tmp_path, tiny_dataset) -> None:
    run = train_run(build_model("pop"), tiny_dataset)
    run.save(tmp_path / "r")
    before = (tmp_path / "r" / "model" / "model.safetensors").read_bytes()

    def crash(tmp):
        (tmp / "half").write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write_dir(tmp_path / "r", crash)
    assert (tmp_path / "r" / "model" / "model.safetensors").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["r"]
