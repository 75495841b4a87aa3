"""The media CNN's alignment runs in the one trainer: exact resume after an interruption, seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fusionrec.encoders.image import CNNImageEncoder
from fusionrec.encoders.media import AlignConfig
from tests.training.interrupt import Stop, stop_after

from .test_image import colour_world

FAST = AlignConfig(epochs=5, batch_size=16, width=8)


def encoder(seed: int = 0, ck: Path | None = None, on_epoch=None) -> CNNImageEncoder:
    enc = CNNImageEncoder(image_size=16, config=FAST, seed=seed)
    enc.checkpoint_dir, enc.on_epoch = ck, on_epoch
    return enc


def test_resume_after_an_interruption_gives_the_uninterrupted_encoder(tmp_path: Path) -> None:
    pixels, beh = colour_world(n=60)
    full = encoder().fit(pixels, beh)
    with pytest.raises(Stop):
        encoder(ck=tmp_path, on_epoch=stop_after(2)).fit(pixels, beh)
    resumed = encoder(ck=tmp_path).fit(pixels, beh)
    assert [h.get("resumed_from") for h in resumed.training_log_] == [None, None, 2, None, None]
    np.testing.assert_array_equal(resumed.encode(pixels), full.encode(pixels))
    report = {k: v for k, v in full.report_.items() if k != "seconds"}
    assert {k: v for k, v in resumed.report_.items() if k != "seconds"} == report
    assert len(report["valid_cos"]) == 5 and report["valid_items"] == 6


def test_seed_sets_the_training_and_the_config() -> None:
    pixels, beh = colour_world(n=40)
    a, b, c = encoder().fit(pixels, beh), encoder().fit(pixels, beh), encoder(seed=1).fit(pixels, beh)
    np.testing.assert_array_equal(a.encode(pixels), b.encode(pixels))
    assert not np.array_equal(a.encode(pixels), c.encode(pixels))
    assert c.config.seed == 1 and c.config.epochs == FAST.epochs


def test_without_held_out_items_the_last_epoch_is_kept() -> None:
    pixels, beh = colour_world(n=12)  # fewer than 20 items: nothing held out
    enc = encoder().fit(pixels, beh)
    assert enc.report_["valid_items"] == 0 and enc.report_["best_epoch"] == FAST.epochs
    assert len(enc.report_["train_loss"]) == FAST.epochs
