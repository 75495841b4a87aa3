"""One trainer for every torch model: AdamW, warm-up + schedule, clipping, early stopping on
validation NDCG@10, a checkpoint every epoch with resume after a kill, seeds, progress, a JSON-lines log.

A model supplies :meth:`TorchRecommender.training_batches` and :meth:`TorchRecommender.training_step`;
a new model is a new file, never a new trainer.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from fusionrec.data.schema import Dataset
from fusionrec.errors import ConfigError

log = logging.getLogger(__name__)

CKPT_WEIGHTS = "last.safetensors"
CKPT_BEST = "best.safetensors"
CKPT_META = "last.json"
LOG_FILE = "log.jsonl"


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by every torch model (model configs inherit these fields)."""

    seed: int = 0
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 100
    schedule: str = "cosine"  # cosine | linear | constant (after warm-up)
    grad_clip: float = 5.0
    patience: int = 5  # epochs without a better validation metric before stopping
    eval_every: int = 1
    threads: int = 0  # torch intra-op threads; 0 = leave torch's default

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{type(self).__name__}.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"{type(self).__name__}.lr must be > 0, got {self.lr}")
        if self.schedule not in ("cosine", "linear", "constant"):
            raise ValueError(f"{type(self).__name__}.schedule must be cosine, linear or constant, got {self.schedule!r}")
        if self.patience < 0 or self.warmup_steps < 0 or self.grad_clip < 0 or self.weight_decay < 0:
            raise ValueError(f"{type(self).__name__}: patience, warmup_steps, grad_clip, weight_decay must be >= 0")


def lr_factor(step: int, total: int, cfg: TrainConfig) -> float:
    """Multiplier of the base learning rate at optimizer step ``step`` of ``total``."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant" or total <= cfg.warmup_steps:
        return 1.0
    p = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return 0.5 * (1 + math.cos(math.pi * p)) if cfg.schedule == "cosine" else 1.0 - p


def _atomic_save(tensors: dict[str, torch.Tensor], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def _atomic_json(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)


def optimizer_tensors(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """AdamW state as flat named tensors (safetensors holds tensors only)."""
    out = {}
    for i, (_, st) in enumerate(sorted(opt.state_dict()["state"].items())):
        for k, v in st.items():
            out[f"optim.{i}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    return out


def load_optimizer_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    sd = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, i, name = key.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    sd["state"] = state
    opt.load_state_dict(sd)


class Trainer:
    """Trains a :class:`fusionrec.models.torch_base.TorchRecommender`'s network.

    Parameters
    ----------
    checkpoint_dir : where ``last.safetensors``/``last.json``/``best.safetensors``/``log.jsonl`` go.
        When it holds a checkpoint of the same config, training resumes after its last complete epoch.
    progress : called after each epoch with the log record (the CLI draws a progress bar from it).
    """

    def __init__(self, checkpoint_dir: Path | None = None,
                 progress: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.progress = progress

    def fit(self, model: Any, train: Dataset, valid: Dataset | None) -> list[dict[str, Any]]:
        from fusionrec.evaluation.evaluate import evaluate

        cfg: TrainConfig = model.config
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        net: torch.nn.Module = model.network_
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        rng = np.random.default_rng(cfg.seed)
        steps_per_epoch = max(1, model.steps_per_epoch(train))
        total = steps_per_epoch * cfg.epochs
        fingerprint = json.dumps(dataclasses.asdict(cfg), sort_keys=True) + f"|{train.n_interactions}|{train.n_items}"
        start_epoch, step, best, best_epoch, history = 0, 0, -math.inf, -1, []
        ck = self.checkpoint_dir
        if ck is not None:
            ck.mkdir(parents=True, exist_ok=True)
            meta_path = ck / CKPT_META
            if meta_path.exists():
                meta = json.loads(meta_path.read_text())
                if meta.get("fingerprint") == fingerprint:
                    t = load_file(str(ck / CKPT_WEIGHTS))
                    net.load_state_dict({k[4:]: v for k, v in t.items() if k.startswith("net.")})
                    load_optimizer_tensors(opt, t)
                    torch.set_rng_state(t["rng.torch"])
                    rng.bit_generator.state = meta["numpy_rng"]
                    start_epoch, step = meta["epoch"] + 1, meta["step"]
                    best, best_epoch, history = meta["best"], meta["best_epoch"], meta["history"]
                    log.info("resuming %s after epoch %d", model.name, meta["epoch"] + 1)
                else:
                    log.warning("checkpoint in %s is from another config; starting afresh", ck)
        bad_epochs = sum(1 for h in history[best_epoch + 1:] if "valid" in h) if best_epoch >= 0 else 0
        for epoch in range(start_epoch, cfg.epochs):
            if valid is not None and best_epoch >= 0 and bad_epochs > cfg.patience:
                break
            net.train()
            t0 = time.perf_counter()
            total_loss, n_batches = 0.0, 0
            for batch in model.training_batches(train, rng):
                for g in opt.param_groups:
                    g["lr"] = cfg.lr * lr_factor(step, total, cfg)
                loss = model.training_step(batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
                opt.step()
                step += 1
                total_loss += float(loss.detach())
                n_batches += 1
            rec: dict[str, Any] = {"epoch": epoch + 1, "loss": total_loss / max(1, n_batches),
                                   "seconds": round(time.perf_counter() - t0, 3), "lr": opt.param_groups[0]["lr"]}
            if valid is not None and valid.n_interactions and (epoch + 1) % cfg.eval_every == 0:
                net.eval()
                metric = evaluate(model, valid, (10,)).metrics["NDCG@10"]
                rec["valid"] = {"NDCG@10": metric}
                if metric > best:
                    best, best_epoch, bad_epochs = metric, epoch, 0
                    if ck is not None:
                        _atomic_save({f"net.{k}": v for k, v in net.state_dict().items()}, ck / CKPT_BEST)
                    else:
                        model.best_state_ = {k: v.detach().clone() for k, v in net.state_dict().items()}
                else:
                    bad_epochs += 1
            history.append(rec)
            if ck is not None:
                tensors = {f"net.{k}": v for k, v in net.state_dict().items()}
                tensors.update(optimizer_tensors(opt))
                tensors["rng.torch"] = torch.get_rng_state()
                _atomic_save(tensors, ck / CKPT_WEIGHTS)
                _atomic_json({"fingerprint": fingerprint, "epoch": epoch, "step": step, "best": best,
                              "best_epoch": best_epoch, "history": history,
                              "numpy_rng": rng.bit_generator.state}, ck / CKPT_META)
                with open(ck / LOG_FILE, "a") as fh:
                    fh.write(json.dumps(rec) + "\n")
            if self.progress is not None:
                self.progress(rec)
        # keep the best validated weights
        if best_epoch >= 0:
            if ck is not None and (ck / CKPT_BEST).exists():
                t = load_file(str(ck / CKPT_BEST))
                net.load_state_dict({k[4:]: v for k, v in t.items()})
            elif getattr(model, "best_state_", None) is not None:
                net.load_state_dict(model.best_state_)
                model.best_state_ = None
        net.eval()
        return history


def check_positive(cfg: Any, names: Iterable[str]) -> None:
    for n in names:
        if getattr(cfg, n) < 1:
            raise ConfigError(f"{type(cfg).__name__}.{n} must be >= 1, got {getattr(cfg, n)}")
