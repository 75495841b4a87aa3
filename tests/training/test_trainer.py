"""The one Trainer: seeds, early stopping, checkpoints that survive a crash, exact resume."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from fusionrec.data.schema import Dataset
from fusionrec.data.splits import leave_last_out
from fusionrec.evaluation import evaluate
from fusionrec.models.sasrec import SASRec, SASRecConfig
from fusionrec.models.torch_base import TorchRecommender
from fusionrec.training import trainer as T
from fusionrec.training.trainer import CKPT_WEIGHTS, LOG_FILE, TrainConfig, lr_factor, shard_rows
from tests.conftest import tiny_interactions
from tests.training.interrupt import Stop, stop_after


@pytest.fixture(scope="module")
def split():
    return leave_last_out(Dataset.from_frames(tiny_interactions(n_users=60, n_items=50, per_user=12), name="t"))


def sasrec(epochs: int = 5, seed: int = 0, ck: Path | None = None, on_epoch=None, **kw) -> SASRec:
    cfg = SASRecConfig(hidden=16, heads=1, layers=1, max_len=10, inner=16, epochs=epochs, batch_size=16,
                       warmup_steps=3, patience=0, dropout=0.2, threads=1, seed=seed, **kw)
    m = SASRec(cfg)
    m.checkpoint_dir, m.on_epoch = ck, on_epoch
    return m


def losses(m: TorchRecommender) -> list[float]:
    return [h["loss"] for h in m.training_log_]


def weights(m: TorchRecommender) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in m.network_.state_dict().items()}


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------------------------- seeds
def test_same_seed_same_losses_weights_and_metrics(split) -> None:
    a = sasrec().fit(split.train, split.valid)
    b = sasrec().fit(split.train, split.valid)
    assert losses(a) == losses(b)
    assert same_weights(weights(a), weights(b))
    assert evaluate(a, split.test).metrics == evaluate(b, split.test).metrics


def test_another_seed_trains_another_model(split) -> None:
    a = sasrec(seed=0).fit(split.train, split.valid)
    b = sasrec(seed=1).fit(split.train, split.valid)
    assert losses(a) != losses(b)


# ---------------------------------------------------------------------------------------------- resume
def test_resume_after_a_crash_continues_exactly(split, tmp_path: Path) -> None:
    full = sasrec(epochs=5).fit(split.train, split.valid)
    with pytest.raises(Stop):
        sasrec(epochs=5, ck=tmp_path, on_epoch=stop_after(2)).fit(split.train, split.valid)
    meta = json.loads((tmp_path / "last.json").read_text())
    assert meta["epoch"] == 1 and meta["step"] > 0  # epochs 1-2 committed (0-based index 1)
    resumed = sasrec(epochs=5, ck=tmp_path).fit(split.train, split.valid)
    # epochs continue (3, 4, 5), and every number equals the uninterrupted run's
    assert [h["epoch"] for h in resumed.training_log_] == [1, 2, 3, 4, 5]
    assert [h.get("resumed_from") for h in resumed.training_log_] == [None, None, 2, None, None]
    assert losses(resumed) == losses(full)
    assert [h["lr"] for h in resumed.training_log_] == [h["lr"] for h in full.training_log_]  # schedule step kept
    assert same_weights(weights(resumed), weights(full))
    log = [json.loads(line) for line in (tmp_path / LOG_FILE).read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3, 4, 5]


def test_finished_checkpoint_is_not_trained_again(split, tmp_path: Path) -> None:
    first = sasrec(epochs=3, ck=tmp_path).fit(split.train, split.valid)
    seen: list[dict] = []
    again = sasrec(epochs=3, ck=tmp_path, on_epoch=seen.append).fit(split.train, split.valid)
    assert seen == [] and losses(again) == losses(first)
    assert same_weights(weights(again), weights(first))


def test_checkpoint_of_another_config_is_not_resumed(split, tmp_path: Path) -> None:
    sasrec(epochs=2, ck=tmp_path).fit(split.train, split.valid)
    other = sasrec(epochs=3, ck=tmp_path, lr=2e-3).fit(split.train, split.valid)
    assert "resumed_from" not in json.dumps(other.training_log_)
    log = (tmp_path / LOG_FILE).read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in log] == [1, 2, 3]  # the old run's log was cut


def test_half_written_checkpoint_never_replaces_a_good_one(split, tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(Stop):
        sasrec(epochs=4, ck=tmp_path, on_epoch=stop_after(2)).fit(split.train, split.valid)
    good = (tmp_path / CKPT_WEIGHTS).read_bytes()
    real_save = T.save_file

    def dies_while_writing(tensors, filename, metadata=None):  # a kill in the middle of the commit's write
        if CKPT_WEIGHTS not in filename:
            return real_save(tensors, filename, metadata=metadata)
        Path(filename).write_bytes(b"\x00" * 100)
        raise OSError("killed while writing")

    monkeypatch.setattr(T, "save_file", dies_while_writing)
    with pytest.raises(OSError, match="killed while writing"):
        sasrec(epochs=4, ck=tmp_path).fit(split.train, split.valid)
    assert (tmp_path / CKPT_WEIGHTS).read_bytes() == good  # the good checkpoint is untouched
    assert (tmp_path / f".{CKPT_WEIGHTS}.tmp").exists()  # the torn file stays under its temporary name
    load_file(str(tmp_path / CKPT_WEIGHTS))  # and the good one still reads
    (tmp_path / f"{CKPT_WEIGHTS}.tmp").write_bytes(b"garbage")  # stray temp files of any spelling are ignored
    monkeypatch.setattr(T, "save_file", real_save)
    resumed = sasrec(epochs=4, ck=tmp_path).fit(split.train, split.valid)
    assert [h.get("resumed_from") for h in resumed.training_log_] == [None, None, 2, None]
    assert losses(resumed) == losses(sasrec(epochs=4).fit(split.train, split.valid))
    assert not (tmp_path / f".{CKPT_WEIGHTS}.tmp").exists()


def test_unreadable_checkpoint_starts_afresh(split, tmp_path: Path, caplog) -> None:
    (tmp_path / CKPT_WEIGHTS).write_bytes(b"not a safetensors file")
    m = sasrec(epochs=2, ck=tmp_path).fit(split.train, split.valid)
    assert [h["epoch"] for h in m.training_log_] == [1, 2]
    assert "unreadable" in caplog.text


def test_optimizer_state_round_trips_when_a_parameter_has_no_state() -> None:
    net = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1), nn.Linear(3, 1))
    opt = torch.optim.AdamW(net.parameters())
    (net[1](net[0](torch.ones(2, 3))) ** 2).sum().backward()  # net[2] gets no gradient, so no state
    opt.step()
    saved = T.optimizer_tensors(opt)
    opt2 = torch.optim.AdamW(net.parameters())
    T.load_optimizer_tensors(opt2, saved)
    a, b = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert a.keys() == b.keys() == {0, 1, 2, 3}
    for pid in a:
        for name in a[pid]:
            assert torch.equal(torch.as_tensor(a[pid][name]), torch.as_tensor(b[pid][name]))


# ---------------------------------------------------------------------------------------------- early stopping
@dataclass(frozen=True)
class ScriptedConfig(TrainConfig):
    warmup_steps: int = 0


class Scripted(TorchRecommender):
    """A tiny network whose validation metric is read from a script, epoch by epoch."""

    name = "scripted"
    Config = ScriptedConfig
    script: list[float] = []

    def build_network(self) -> nn.Module:
        return nn.Linear(2, 1)

    def steps_per_epoch(self, train: Dataset) -> int:
        return 1

    def training_batches(self, train: Dataset, rng: np.random.Generator) -> Iterator[torch.Tensor]:
        yield torch.from_numpy(rng.normal(size=(4, 2)).astype(np.float32))

    def training_step(self, batch: torch.Tensor) -> torch.Tensor:
        return ((self.network_(batch) - 1) ** 2).mean()

    def validation_metric(self, valid: Dataset) -> float:
        self.snapshots.append({k: v.clone() for k, v in self.network_.state_dict().items()})
        return self.script[len(self.snapshots) - 1]

    def _score(self, users, history):
        return np.zeros((len(users), self.n_items_), dtype=np.float32)


def scripted(script: list[float], higher: bool = True, ck: Path | None = None, on_epoch=None,
             **cfg) -> Scripted:
    m = Scripted(ScriptedConfig(epochs=len(script), **cfg))
    m.script, m.snapshots, m.valid_higher_is_better = script, [], higher  # type: ignore[misc]
    m.checkpoint_dir, m.on_epoch = ck, on_epoch
    return m


def test_patience_stops_after_that_many_epochs_without_improvement(tiny_dataset) -> None:
    m = scripted([0.1, 0.3, 0.2, 0.25, 0.29, 0.5, 0.6], patience=3).fit(tiny_dataset, tiny_dataset)
    assert [h["epoch"] for h in m.training_log_] == [1, 2, 3, 4, 5]  # 3 epochs after the best (epoch 2)
    assert m.training_log_[-1]["early_stop"] is True
    assert same_weights(weights(m), m.snapshots[1])  # the best epoch's weights are kept


def test_lower_is_better_metric(tiny_dataset) -> None:
    m = scripted([0.9, 0.8, 0.85, 0.7, 0.75], higher=False, patience=2).fit(tiny_dataset, tiny_dataset)
    assert [h["epoch"] for h in m.training_log_] == [1, 2, 3, 4, 5]
    assert same_weights(weights(m), m.snapshots[3])  # RMSE 0.7 at epoch 4


def test_patience_zero_never_stops_early(tiny_dataset) -> None:
    m = scripted([0.5, 0.1, 0.1, 0.1], patience=0).fit(tiny_dataset, tiny_dataset)
    assert len(m.training_log_) == 4 and same_weights(weights(m), m.snapshots[0])


def test_early_stopping_counter_survives_a_resume(tiny_dataset, tmp_path: Path) -> None:
    script = [0.1, 0.3, 0.2, 0.25, 0.29, 0.5, 0.6]
    with pytest.raises(Stop):
        scripted(script, patience=3, ck=tmp_path, on_epoch=stop_after(4)).fit(tiny_dataset, tiny_dataset)
    m = scripted(script[4:], patience=3, ck=tmp_path)  # the resumed run validates epochs 5, 6, ...
    m.config = replace(m.config, epochs=len(script))
    m.fit(tiny_dataset, tiny_dataset)
    assert [h["epoch"] for h in m.training_log_] == [1, 2, 3, 4, 5]  # stops after epoch 5, as unbroken
    assert m.training_log_[1]["valid"] == {"NDCG@10": 0.3}


# ---------------------------------------------------------------------------------------------- pieces
def test_lr_schedule_warms_up_then_decays() -> None:
    cfg = TrainConfig(warmup_steps=4, schedule="cosine")
    f = [lr_factor(s, 20, cfg) for s in range(20)]
    assert f[:4] == [0.25, 0.5, 0.75, 1.0] and f[4] == 1.0
    assert all(a >= b for a, b in zip(f[4:], f[5:], strict=False)) and f[-1] < 0.05


def test_shard_rows_splits_every_row_tensor_once() -> None:
    batch = (torch.arange(10).reshape(5, 2), np.arange(5), torch.tensor(3.0), {"w": torch.ones(5)})
    parts = [shard_rows(batch, r, 2) for r in range(2)]
    assert torch.equal(torch.cat([p[0] for p in parts]), batch[0])
    assert np.array_equal(np.concatenate([p[1] for p in parts]), batch[1])
    assert all(p[2] is batch[2] for p in parts) and sum(len(p[3]["w"]) for p in parts) == 5
    tiny = torch.ones(1, 3)
    assert shard_rows(tiny, 1, 2) is tiny  # fewer rows than ranks: every rank takes the whole batch


def test_config_rejects_bad_device() -> None:
    with pytest.raises(ValueError, match="device"):
        TrainConfig(device="tpu")
