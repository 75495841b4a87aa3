"""The trainer trains any TrainingTask: data that are not a Dataset, the after_step hook, the data
fingerprint hook, validation switched off, and exact resume of such a task."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fusionrec.training import Trainable, TrainConfig, Trainer
from fusionrec.training.task import best_record
from tests.training.interrupt import Stop, stop_after


@dataclass
class Points:
    """Plain arrays, no Dataset: x (n, 3), y (n,)."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


def points(n: int = 64, seed: int = 0) -> Points:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    return Points(x, (x @ np.array([2.0, -1.0, 0.5], np.float32) + 0.1 * rng.normal(size=n)).astype(np.float32))


class Regression(Trainable):
    """Least squares with the weights clipped to [-1, 1] after every step (a projection, as TransE's)."""

    name = "regression"
    valid_metric = "MSE"
    valid_higher_is_better = False

    def __init__(self, cfg: TrainConfig, fingerprint: bool = True) -> None:
        self.config = cfg
        torch.manual_seed(cfg.seed)
        self.network_ = nn.Linear(3, 1)
        self.after_steps = 0
        if fingerprint:
            self.data_fingerprint = lambda d: hashlib.sha1(d.x.tobytes() + d.y.tobytes()).hexdigest()[:16]

    def steps_per_epoch(self, data: Points) -> int:
        return math.ceil(len(data) / self.config.batch_size)

    def training_batches(self, data: Points, rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
        perm = rng.permutation(len(data))
        for s in range(0, len(perm), self.config.batch_size):
            b = perm[s:s + self.config.batch_size]
            yield torch.from_numpy(data.x[b]), torch.from_numpy(data.y[b])

    def training_step(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, y = batch
        return ((self.network_(x)[:, 0] - y) ** 2).mean()

    def after_step(self) -> None:
        self.after_steps += 1
        self.network_.weight.clamp_(-1.0, 1.0)


class Validated(Regression):
    """Regression with a validation metric (early stopping, best epoch)."""

    def validation_metric(self, valid: Points) -> float:
        with torch.no_grad():
            return float(((self.network_(torch.from_numpy(valid.x))[:, 0] - torch.from_numpy(valid.y)) ** 2).mean())


def config(**kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 6, "batch_size": 16, "lr": 0.05, "warmup_steps": 0, "grad_clip": 0.0,
                          "patience": 0, "device": "cpu", "threads": 1, **kw})


def weights(task: Regression) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in task.network_.state_dict().items()}


def test_trains_on_arrays_with_after_step_after_every_step() -> None:
    task = Validated(config())
    history = task.run_trainer(points(), points(seed=1))
    assert [h["epoch"] for h in history] == list(range(1, 7)) and task.training_log_ is history
    assert task.after_steps == 6 * 4  # 64 points in batches of 16, 6 epochs
    assert task.network_.weight.abs().max() <= 1.0  # the projection holds: the true weight 2 is cut to 1
    assert history[-1]["loss"] < history[0]["loss"]  # seeds 0-4, 1 and 2 threads: last/first 0.40-0.58
    assert all("MSE" in h["valid"] for h in history)
    best = best_record(history, "MSE", higher=False)
    assert best is not None and best["valid"]["MSE"] == min(h["valid"]["MSE"] for h in history)


def test_same_seed_same_weights_another_seed_others() -> None:
    a, b, c = Regression(config()), Regression(config()), Regression(config(seed=1))
    for t in (a, b, c):
        t.run_trainer(points())
    assert all(torch.equal(weights(a)[k], weights(b)[k]) for k in weights(a))
    assert [h["loss"] for h in a.training_log_] != [h["loss"] for h in c.training_log_]


def test_resume_after_a_crash_continues_exactly(tmp_path: Path) -> None:
    full = Validated(config())
    full.run_trainer(points(), points(seed=1))
    cut = Validated(config())
    cut.checkpoint_dir, cut.on_epoch = tmp_path, stop_after(3)
    with pytest.raises(Stop):
        cut.run_trainer(points(), points(seed=1))
    resumed = Validated(config())
    resumed.checkpoint_dir = tmp_path
    history = resumed.run_trainer(points(), points(seed=1))
    assert [h.get("resumed_from") for h in history] == [None, None, None, 3, None, None]
    assert [h["loss"] for h in history] == [h["loss"] for h in full.training_log_]
    assert [h["valid"] for h in history] == [h["valid"] for h in full.training_log_]
    assert all(torch.equal(weights(resumed)[k], weights(full)[k]) for k in weights(full))
    assert resumed.after_steps == 3 * 4  # only the epochs it ran itself
    other = Regression(config())  # other data: the checkpoint is not resumed
    other.checkpoint_dir = tmp_path
    assert "resumed_from" not in str(other.run_trainer(points(seed=2)))


def test_data_other_than_a_dataset_need_a_fingerprint_to_checkpoint(tmp_path: Path) -> None:
    Regression(config(epochs=1), fingerprint=False).run_trainer(points())  # no checkpoint: no fingerprint needed
    task = Regression(config(epochs=1), fingerprint=False)
    task.checkpoint_dir = tmp_path
    with pytest.raises(TypeError, match="data_fingerprint"):
        task.run_trainer(points())


def test_validation_needs_a_metric_and_eval_every_zero_switches_it_off() -> None:
    task = Validated(config(epochs=2, eval_every=0))
    assert all("valid" not in h for h in task.run_trainer(points(), points(seed=1)))

    with pytest.raises(TypeError, match="validation_metric"):  # Regression has none
        Trainer().fit(Regression(config(epochs=1)), points(), points(seed=1))
    Trainer().fit(Regression(config(epochs=1)), points(), Points(np.zeros((0, 3), np.float32), np.zeros(0, np.float32)))


def test_config_eval_every_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="eval_every"):
        TrainConfig(eval_every=-1)


# ---------------------------------------------------------------------------------------------- stages, part of a network
class Bias(Regression):
    """A first stage that trains only the bias of a shared network (trainable_parameters)."""

    name = "bias-only"

    def __init__(self, cfg: TrainConfig, net: nn.Linear) -> None:
        super().__init__(cfg)
        self.network_ = net

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [self.network_.bias]


class TwoStages(Validated):
    """fit = a bias-only stage, then the whole network."""

    def fit(self, data: Points, valid: Points) -> TwoStages:
        self.stage = Bias(config(epochs=3, lr=0.1), self.network_)
        self.stage_log_ = self.run_trainer(data, task=self.stage, stage="bias")
        self.run_trainer(data, valid)
        return self


def test_trainable_parameters_leave_the_rest_alone() -> None:
    task = Regression(config(epochs=2))
    before = task.network_.weight.detach().clone()
    stage = Bias(config(epochs=2), task.network_)
    stage.run_trainer(points())
    assert torch.equal(task.network_.weight, before) and stage.network_ is task.network_
    stage.trainable_parameters = lambda: [nn.Parameter(torch.zeros(1))]  # not the network's: refused
    with pytest.raises(ValueError, match="trainable_parameters"):
        stage.run_trainer(points())


def test_a_finished_stage_is_not_trained_again_and_the_next_resumes(tmp_path: Path) -> None:
    full = TwoStages(config()).fit(points(), points(seed=1))
    cut = TwoStages(config())
    cut.checkpoint_dir, cut.on_epoch = tmp_path, stop_after(2)  # dies in the second stage
    with pytest.raises(Stop):
        cut.fit(points(), points(seed=1))
    assert (tmp_path / "bias" / "last.safetensors").exists() and (tmp_path / "last.safetensors").exists()
    resumed = TwoStages(config())
    resumed.checkpoint_dir = tmp_path
    resumed.fit(points(), points(seed=1))
    assert resumed.stage.after_steps == 0 and full.stage.after_steps == 3 * 4  # the bias stage was done
    assert resumed.after_steps == 4 * 4  # the main stage's epochs 3-6
    assert [h["loss"] for h in resumed.stage_log_] == [h["loss"] for h in full.stage_log_]
    assert [h["loss"] for h in resumed.training_log_] == [h["loss"] for h in full.training_log_]
    assert all(torch.equal(weights(resumed)[k], weights(full)[k]) for k in weights(full))
    with pytest.raises(ValueError, match="both"):
        resumed.run_trainer(points(), stage="x")
