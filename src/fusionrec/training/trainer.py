"""One trainer for every torch model: AdamW, warm-up + schedule, clipping, early stopping on a validation
metric, a checkpoint every epoch with resume after a kill, seeds, progress, a JSON-lines log, data-parallel
training under ``torch.distributed``, mixed precision and ``torch.compile`` on CUDA.

What it trains is any :class:`~fusionrec.training.task.TrainingTask`: a ``config``, a ``network_``, a
``name``, ``steps_per_epoch(data)``, ``training_batches(data, rng)`` and ``training_step(batch) -> loss``,
plus the optional hooks listed in :mod:`fusionrec.training.task` (validation metric, data fingerprint,
batch sharding, ``after_step``). The data need not be a ``Dataset``: recommenders train on interactions,
KG embeddings on triples, media encoders on decoded arrays. A new model is a new file, never a new trainer.

Checkpoints
-----------
``checkpoint_dir`` holds, after every complete epoch:

``last.safetensors``
    network, AdamW state and every rank's torch RNG state; its safetensors metadata holds the
    progress (epoch, optimizer step, best metric, history, numpy RNG state). This one file is the
    commit point: it is written to a temporary name, flushed to disk and renamed over the old one, so a
    kill at any moment leaves either the previous complete epoch or the new one, never a mixture.
``best-eNNNN.safetensors``
    the weights of the best validated epoch NNNN (named by ``last.safetensors``; stale ones are removed).
``last.json``
    a readable copy of the progress (informational; never read back).
``log.jsonl``
    one JSON record per epoch; on resume it is cut back to the committed epochs.

Distributed
-----------
When ``torch.distributed`` is initialised (``torchrun``), the network is wrapped in
``DistributedDataParallel``; every rank draws the same batch order (same seed) and trains on its slice of
each batch, so the number of optimizer steps, the global batch and the LR schedule equal the
single-process run. Validation ranks each rank's share of the users and gathers the lists
(:func:`fusionrec.evaluation.evaluate`, ``distributed=True``). Only rank 0 writes files and calls ``progress``.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from fusionrec.data.schema import Dataset
from fusionrec.errors import ConfigError
from fusionrec.threads import torch_threads

log = logging.getLogger(__name__)

CKPT_WEIGHTS = "last.safetensors"
CKPT_META = "last.json"
LOG_FILE = "log.jsonl"
_BEST_RE = re.compile(r"best-e(\d+)\.safetensors$")
#: settings that do not change what is learned; a checkpoint resumes across changes of these
_NOT_FINGERPRINTED = ("threads", "device", "compile")


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
    grad_clip: float = 5.0  # max global gradient norm; 0 = no clipping
    patience: int = 5  # stop after this many validations in a row without improvement; 0 = never stop early
    eval_every: int = 1  # epochs between validations (and the last epoch); 0 = never validate
    threads: int = 0  # torch intra-op threads while training; 0 = leave torch's default
    device: str = "auto"  # auto (CUDA when available, else CPU) | cpu | cuda | cuda:N
    amp: bool = True  # bfloat16 autocast, on CUDA only
    compile: bool = True  # torch.compile the network, on CUDA only

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{type(self).__name__}.{name} must be >= 1, got {getattr(self, name)}")
        if self.eval_every < 0:
            raise ValueError(f"{type(self).__name__}.eval_every must be >= 0, got {self.eval_every}")
        if self.lr <= 0:
            raise ValueError(f"{type(self).__name__}.lr must be > 0, got {self.lr}")
        if self.schedule not in ("cosine", "linear", "constant"):
            raise ValueError(f"{type(self).__name__}.schedule must be cosine, linear or constant, got {self.schedule!r}")
        if self.patience < 0 or self.warmup_steps < 0 or self.grad_clip < 0 or self.weight_decay < 0:
            raise ValueError(f"{type(self).__name__}: patience, warmup_steps, grad_clip, weight_decay must be >= 0")
        if self.threads < 0:
            raise ValueError(f"{type(self).__name__}.threads must be >= 0, got {self.threads}")
        if not re.fullmatch(r"cpu|auto|cuda(:\d+)?", self.device):
            raise ValueError(f"{type(self).__name__}.device must be cpu, cuda, cuda:N or auto, got {self.device!r}")


def lr_factor(step: int, total: int, cfg: TrainConfig) -> float:
    """Multiplier of the base learning rate at optimizer step ``step`` of ``total``."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant" or total <= cfg.warmup_steps:
        return 1.0
    p = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return 0.5 * (1 + math.cos(math.pi * p)) if cfg.schedule == "cosine" else 1.0 - p


def resolve_device(name: str) -> torch.device:
    """``auto`` is the current CUDA device when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device={name!r} but CUDA is not available; use device='cpu' or 'auto'")
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
    return dev


# ---------------------------------------------------------------------------------------------- files
def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def atomic_save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write a safetensors file under a temporary name, flush it, then rename it over ``path``.

    A crash (or ``kill -9``) at any point leaves ``path`` as it was or complete, never half-written.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    _fsync(tmp)
    os.replace(tmp, path)


def _atomic_text(text: str, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_checkpoint(ck: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
    """The committed progress and tensors in ``ck``, or None when there is no readable checkpoint."""
    path = ck / CKPT_WEIGHTS
    if not path.exists():
        return None
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = json.loads((fh.metadata() or {})["progress"])
        return meta, load_file(str(path))
    except (SafetensorError, KeyError, ValueError, OSError) as e:  # not ours, or damaged outside our writes
        log.warning("checkpoint %s is unreadable (%s); starting afresh", path, e)
        return None


def optimizer_tensors(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """AdamW state as flat named tensors ``optim.<param index>.<name>`` (safetensors holds tensors only)."""
    out = {}
    for pid, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            out[f"optim.{pid}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    return out


def load_optimizer_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    sd = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    sd["state"] = state
    opt.load_state_dict(sd)  # moves the state to each parameter's device


def data_fingerprint(train: Dataset) -> str:
    """A short hash of the training interactions (a checkpoint resumes only on the same data)."""
    if not isinstance(train, Dataset):
        raise TypeError(f"the trainer fingerprints a Dataset by default, got {type(train).__name__}; a task "
                        f"training on other data defines data_fingerprint(data) -> str")
    h = hashlib.sha1()
    inter = train.interactions
    for col in ("user", "item", "timestamp", "rating"):
        if col in inter.columns:
            h.update(np.ascontiguousarray(inter[col].to_numpy()).tobytes())
    h.update(f"{train.n_users}|{train.n_items}".encode())
    return h.hexdigest()[:16]


def trained_parameters(model: Any, net: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The parameters the optimizer updates: the task's ``trainable_parameters()`` when it has that hook (a
    subset of ``net``'s, e.g. a pretraining stage that leaves some modules alone), else all of ``net``'s."""
    hook = getattr(model, "trainable_parameters", None)
    if hook is None:
        return list(net.parameters())
    params = list(hook())
    known = {id(p) for p in net.parameters()}
    if not params or any(id(p) not in known for p in params):
        raise ValueError(f"{model.name}: trainable_parameters() must give some of network_'s parameters (the "
                         f"checkpoints hold network_ only); put every trained module inside network_")
    return params


# ---------------------------------------------------------------------------------------------- distributed
def dist_info() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised process group, ``(0, 1)`` without one."""
    d = torch.distributed
    if d.is_available() and d.is_initialized():
        return d.get_rank(), d.get_world_size()
    return 0, 1


def shard_rows(batch: Any, rank: int, world: int) -> Any:
    """Rank ``rank``'s contiguous slice of every tensor/array in ``batch`` that has the batch's row count.

    Nested tuples, lists and dicts are followed; other values pass through. A batch with fewer rows
    than ranks is given whole to every rank (each computes the same gradient, so the mean is unchanged).
    """
    rows = _first_rows(batch)
    if world == 1 or rows is None or rows < world:
        return batch
    bounds = np.linspace(0, rows, world + 1).round().astype(int)
    lo, hi = int(bounds[rank]), int(bounds[rank + 1])

    def cut(x: Any) -> Any:
        if isinstance(x, (torch.Tensor, np.ndarray)) and x.ndim and x.shape[0] == rows:
            return x[lo:hi]
        if isinstance(x, tuple):
            return tuple(cut(v) for v in x)
        if isinstance(x, list):
            return [cut(v) for v in x]
        if isinstance(x, dict):
            return {k: cut(v) for k, v in x.items()}
        return x

    return cut(batch)


def has_rows(data: Any) -> bool:
    """Whether validation data hold anything: a Dataset with interactions, or a non-empty sized object."""
    if data is None:
        return False
    if isinstance(data, Dataset):
        return data.n_interactions > 0
    try:
        return len(data) > 0
    except TypeError:
        return True


def _first_rows(batch: Any) -> int | None:
    if isinstance(batch, (torch.Tensor, np.ndarray)):
        return int(batch.shape[0]) if batch.ndim else None
    values = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (tuple, list)) else ()
    for v in values:
        r = _first_rows(v)
        if r is not None:
            return r
    return None


def to_device(batch: Any, device: torch.device) -> Any:
    if device.type == "cpu":
        return batch
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, tuple):
        return tuple(to_device(v, device) for v in batch)
    if isinstance(batch, list):
        return [to_device(v, device) for v in batch]
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def _ddp(net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``net`` in DistributedDataParallel; attributes the wrapper lacks (``net.item_matrix()``) come from ``net``."""
    from torch.nn.parallel import DistributedDataParallel

    class _DDP(DistributedDataParallel):
        def __getattr__(self, name: str) -> Any:
            try:
                return super().__getattr__(name)
            except AttributeError:
                return getattr(self.module, name)

    return _DDP(net, device_ids=[device.index] if device.type == "cuda" else None)


# ---------------------------------------------------------------------------------------------- trainer
@dataclass
class _Progress:
    epoch: int = -1  # last complete epoch (0-based); -1 = none
    step: int = 0
    best: float | None = None
    best_epoch: int = -1
    bad: int = 0  # validations in a row without improvement
    done: bool = False  # early-stopped or all epochs run
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)


class Trainer:
    """Trains the network of a :class:`~fusionrec.training.task.TrainingTask` (a torch recommender, a KG
    embedding, a media encoder, ...).

    Parameters
    ----------
    checkpoint_dir : where checkpoints and ``log.jsonl`` go (see the module docstring). When it holds a
        checkpoint of the same task name, config and training data, training resumes after its last
        complete epoch.
    progress : called (on rank 0) after each epoch with the log record; the CLI draws a progress bar from it.

    The task declares its early-stopping metric: ``valid_metric`` (``"NDCG@10"``, ``"RMSE"``, ...) and
    ``valid_higher_is_better``.
    """

    def __init__(self, checkpoint_dir: Path | None = None,
                 progress: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.progress = progress

    def fit(self, model: Any, train: Any, valid: Any | None = None) -> list[dict[str, Any]]:
        """Train ``model.network_`` on ``train``, validating on ``valid`` (None: no validation); returns the
        per-epoch log records. The best validated epoch's weights (else the last epoch's) are kept, and
        ``network_`` is left on the CPU in eval mode."""
        cfg: TrainConfig = model.config
        raw: torch.nn.Module = model.network_
        with torch_threads(cfg.threads):
            try:
                return self._fit(model, raw, train, valid)
            finally:
                model.network_ = raw.cpu().eval()  # inference runs on the CPU

    def _fit(self, model: Any, raw: torch.nn.Module, train: Any, valid: Any | None) -> list[dict[str, Any]]:
        cfg: TrainConfig = model.config
        rank, world = dist_info()
        main = rank == 0
        device = resolve_device(cfg.device)
        cuda = device.type == "cuda"
        torch.manual_seed(cfg.seed + 1_000_003 * rank)  # dropout differs between ranks, batches do not
        rng = np.random.default_rng(cfg.seed)  # batch order: the same on every rank
        raw.to(device)
        params = trained_parameters(model, raw)
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps_per_epoch = max(1, int(model.steps_per_epoch(train)))
        total = steps_per_epoch * cfg.epochs
        ck = self.checkpoint_dir
        fingerprint = ""
        if ck is not None:  # only a checkpoint needs it (hashing large data is not free)
            settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _NOT_FINGERPRINTED}
            hook = getattr(model, "data_fingerprint", None)
            data_fp = hook(train) if hook is not None else data_fingerprint(train)
            fingerprint = f"{model.name}|{json.dumps(settings, sort_keys=True)}|{data_fp}"
        validating = has_rows(valid) and cfg.eval_every > 0
        if validating and not hasattr(model, "validation_metric"):
            raise TypeError(f"{model.name}: validation data given, but {type(model).__name__} has no "
                            f"validation_metric(valid); pass valid=None")
        metric = getattr(model, "valid_metric", "NDCG@10")
        higher = bool(getattr(model, "valid_higher_is_better", True))
        shard = getattr(model, "shard_batch", None) or shard_rows
        after_step = getattr(model, "after_step", None)

        st = _Progress()
        best_state: dict[str, torch.Tensor] | None = None
        resumed_from: int | None = None
        if ck is not None:
            if main:
                ck.mkdir(parents=True, exist_ok=True)
            found = read_checkpoint(ck) if ck.exists() else None
            if found is not None and found[0].get("fingerprint") == fingerprint:
                meta, t = found
                raw.load_state_dict({k[4:]: v for k, v in t.items() if k.startswith("net.")})
                load_optimizer_tensors(opt, t)
                if f"rng.torch.{rank}" in t:
                    torch.set_rng_state(t[f"rng.torch.{rank}"])
                if cuda and f"rng.cuda.{rank}" in t:
                    torch.cuda.set_rng_state(t[f"rng.cuda.{rank}"], device)
                rng.bit_generator.state = meta["numpy_rng"]
                st = _Progress(meta["epoch"], meta["step"], meta["best"], meta["best_epoch"], meta["bad"],
                               meta["done"], meta["history"])
                best_state = _load_best(ck, meta.get("best_file"))
                resumed_from = st.epoch + 1
                log.info("resuming %s after epoch %d of %d", model.name, st.epoch + 1, cfg.epochs)
            elif found is not None:
                log.warning("checkpoint in %s is from another config or data; starting afresh", ck)
            if main:
                self._tidy(ck, st, keep_best=found[0].get("best_file") if resumed_from is not None and found else None)

        train_net: torch.nn.Module = raw
        if world > 1:
            train_net = _ddp(raw, device)
        if cuda and cfg.compile:
            train_net = torch.compile(train_net)
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16)
                    if cuda and cfg.amp and torch.cuda.is_bf16_supported() else nullcontext())

        for epoch in range(st.epoch + 1, cfg.epochs):
            if st.done:
                break
            raw.train()
            model.network_ = train_net
            t0 = time.perf_counter()
            total_loss, n_batches = 0.0, 0
            try:
                with torch.device(device) if cuda else nullcontext():
                    for batch in model.training_batches(train, rng):
                        for g in opt.param_groups:
                            g["lr"] = cfg.lr * lr_factor(st.step, total, cfg)
                        batch = to_device(shard(batch, rank, world), device)
                        with autocast:
                            loss = model.training_step(batch)
                        opt.zero_grad(set_to_none=True)
                        loss.backward()
                        if cfg.grad_clip:
                            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                        opt.step()
                        if after_step is not None:
                            with torch.no_grad():
                                after_step()
                        st.step += 1
                        total_loss += float(loss.detach())
                        n_batches += 1
            finally:
                model.network_ = raw
            if world > 1:  # the epoch's mean loss over every rank's batches
                agg = torch.tensor([total_loss, float(n_batches)], dtype=torch.float64, device=device)
                torch.distributed.all_reduce(agg)
                total_loss, n_batches = float(agg[0]), int(agg[1])
            rec: dict[str, Any] = {"epoch": epoch + 1, "loss": total_loss / max(1, n_batches),
                                   "seconds": round(time.perf_counter() - t0, 3), "lr": opt.param_groups[0]["lr"]}
            if world > 1:
                rec["ranks"] = world
            if resumed_from is not None:
                rec["resumed_from"], resumed_from = resumed_from, None
            improved = False
            if validating and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs):
                with _eval_view(model, raw, cuda):
                    value = float(model.validation_metric(valid))
                rec["valid"] = {metric: value}
                if st.best is None or (value > st.best if higher else value < st.best):
                    st.best, st.best_epoch, st.bad, improved = value, epoch, 0, True
                    best_state = {k: v.detach().cpu().clone() for k, v in raw.state_dict().items()}
                else:
                    st.bad += 1
                    if cfg.patience and st.bad >= cfg.patience:
                        st.done = True
                        rec["early_stop"] = True
                        log.info("%s: no better valid %s for %d epochs; stopping", model.name, metric, st.bad)
            st.epoch = epoch
            st.done = st.done or epoch + 1 == cfg.epochs
            st.history.append(rec)
            if ck is not None:
                self._checkpoint(ck, raw, opt, rng, st, fingerprint, best_state if improved else None, cuda)
            if main and self.progress is not None:
                self.progress(rec)
        if best_state is not None:  # keep the best validated weights
            raw.load_state_dict(best_state)
        raw.eval()
        _weights_changed(model)
        return st.history

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint(self, ck: Path, raw: torch.nn.Module, opt: torch.optim.Optimizer, rng: np.random.Generator,
                    st: _Progress, fingerprint: str, new_best: dict[str, torch.Tensor] | None, cuda: bool) -> None:
        rank, world = dist_info()
        rng_states = [torch.get_rng_state()]
        cuda_states = [torch.cuda.get_rng_state()] if cuda else []
        if world > 1:
            rng_states = [torch.empty(0)] * world
            torch.distributed.all_gather_object(rng_states, torch.get_rng_state())
            if cuda:
                cuda_states = [torch.empty(0)] * world
                torch.distributed.all_gather_object(cuda_states, torch.cuda.get_rng_state())
        if rank == 0:
            best_file = f"best-e{st.best_epoch + 1:04d}.safetensors" if st.best_epoch >= 0 else None
            if new_best is not None and best_file is not None:
                atomic_save({f"net.{k}": v for k, v in new_best.items()}, ck / best_file)
            tensors = {f"net.{k}": v for k, v in raw.state_dict().items()}
            tensors.update(optimizer_tensors(opt))
            tensors.update({f"rng.torch.{r}": s for r, s in enumerate(rng_states)})
            tensors.update({f"rng.cuda.{r}": s for r, s in enumerate(cuda_states)})
            meta = {"fingerprint": fingerprint, "epoch": st.epoch, "step": st.step, "best": st.best,
                    "best_epoch": st.best_epoch, "best_file": best_file, "bad": st.bad, "done": st.done,
                    "history": st.history, "numpy_rng": rng.bit_generator.state, "world_size": world}
            atomic_save(tensors, ck / CKPT_WEIGHTS, metadata={"progress": json.dumps(meta)})  # the commit
            _atomic_text(json.dumps({k: v for k, v in meta.items() if k != "history"}, indent=1), ck / CKPT_META)
            with open(ck / LOG_FILE, "a") as fh:
                fh.write(json.dumps(st.history[-1]) + "\n")
            self._tidy(ck, st, keep_best=best_file, rewrite_log=False)
        if world > 1:
            torch.distributed.barrier()  # no rank runs ahead of the committed checkpoint

    @staticmethod
    def _tidy(ck: Path, st: _Progress, keep_best: str | None, rewrite_log: bool = True) -> None:
        """Remove temporary files and best weights that no commit names; cut the log to the commit."""
        for p in ck.iterdir():
            if (p.name.startswith(".") and p.name.endswith(".tmp")) or (_BEST_RE.match(p.name) and p.name != keep_best):
                p.unlink(missing_ok=True)
        if rewrite_log:
            _atomic_text("".join(json.dumps(r) + "\n" for r in st.history), ck / LOG_FILE)


def _load_best(ck: Path, name: str | None) -> dict[str, torch.Tensor] | None:
    if not name:
        return None
    try:
        t = load_file(str(ck / name))
    except (SafetensorError, OSError) as e:
        log.warning("best weights %s are unreadable (%s); the final weights will be the last epoch's", ck / name, e)
        return None
    return {k[4:]: v for k, v in t.items() if k.startswith("net.")}


@contextmanager
def _eval_view(model: Any, raw: torch.nn.Module, cuda: bool) -> Iterator[None]:
    """Let the model score with its plain network in eval mode (a CPU copy when training on CUDA).

    A model that caches what it computes from its weights (item vectors) is told they changed
    (``weights_changed()``), before and after."""
    net = copy.deepcopy(raw).cpu() if cuda else raw
    net.eval()
    model.network_ = net
    _weights_changed(model)
    try:
        yield
    finally:
        model.network_ = raw
        _weights_changed(model)
        raw.train()


def _weights_changed(model: Any) -> None:
    hook = getattr(model, "weights_changed", None)
    if hook is not None:
        hook()


def check_positive(cfg: Any, names: Iterable[str]) -> None:
    for n in names:
        if getattr(cfg, n) < 1:
            raise ConfigError(f"{type(cfg).__name__}.{n} must be >= 1, got {getattr(cfg, n)}")
