"""Knowledge-graph embeddings: TransE and RotatE in plain torch, with filtered link prediction.

* TransE (Bordes et al., "Translating Embeddings for Modeling Multi-relational Data", NeurIPS
  2013): ``h + r ~ t``, distance ``||h + r - t||_p``.
* RotatE (Sun et al., "RotatE: Knowledge Graph Embedding by Relational Rotation in Complex Space",
  ICLR 2019): entities are complex vectors, a relation rotates them by a phase,
  distance ``sum_k |h_k * r_k - t_k|``.

Both train on corrupted triples (the head or the tail replaced by a uniform entity). The loss is
RotatE's self-adversarial negative sampling loss
``-log s(g - d(h,r,t)) - sum_i p_i log s(d(h'_i,r,t'_i) - g)`` with ``p = softmax(alpha * (g - d'))``
(``adversarial_temperature = 0`` gives uniform weights), or Bordes' margin ranking loss
``max(0, g + d - d')`` with unit-norm entities (``loss="margin"``).

:func:`link_prediction` ranks every entity as the head and as the tail of each test triple,
filtering every other known true triple (the "filtered" setting of Bordes et al.).

Training runs in the one :class:`~fusionrec.training.trainer.Trainer` (``KGEmbedding`` is its task: the
data are triples, not a Dataset): plain Adam by default (no weight decay, warm-up, schedule or
clipping), seeded batches and negatives, and, with ``checkpoint_dir`` set, a checkpoint every epoch from
which a killed run resumes to the same vectors. The margin loss's projection of the entities onto the
unit ball after every step is the task's ``after_step`` hook.

Examples
--------
>>> from fusionrec.graph.triples import Triples
>>> t = Triples.from_labels(["a", "b", "c"], ["r", "r", "r"], ["b", "c", "a"])
>>> m = KGEmbedding(KGEConfig(model="transe", dim=8, epochs=5)).fit(t)
>>> m.entity_vectors().shape
(3, 8)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from fusionrec.errors import ConfigError, NotFittedError
from fusionrec.graph.triples import Triples
from fusionrec.training.task import Trainable
from fusionrec.training.trainer import TrainConfig

log = logging.getLogger(__name__)

KGE_MODELS = ("transe", "rotate")
LOSSES = ("adversarial", "margin")
WEIGHTS_FILE = "kge.safetensors"
META_FILE = "kge.json"


@dataclass(frozen=True)
class KGEConfig(TrainConfig):
    """KG embedding settings; the optimiser's (``lr``, ``epochs``, ``batch_size``, ``seed``, ``threads``,
    ``device``, ...) are :class:`TrainConfig`'s, with defaults that keep plain Adam at a constant rate."""

    model: str = "transe"  # "transe" or "rotate"
    dim: int = 64  # entity dimension (RotatE: complex, so 2*dim reals)
    margin: float = 6.0  # gamma: the score is gamma - distance
    negatives: int = 64  # corrupted triples per positive
    adversarial_temperature: float = 1.0  # alpha of the self-adversarial weights; 0 = uniform
    loss: str = "adversarial"  # "adversarial" (Sun et al.) or "margin" (Bordes et al.)
    norm: int = 1  # TransE p-norm (1 or 2)
    epochs: int = 100
    batch_size: int = 512  # positive triples per step
    lr: float = 0.002  # Adam
    regularization: float = 0.0  # L2 on the embeddings of each batch
    warmup_steps: int = 0
    schedule: str = "constant"
    grad_clip: float = 0.0
    threads: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.model not in KGE_MODELS:
            raise ValueError(f"KGEConfig.model must be one of {KGE_MODELS}, got {self.model!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"KGEConfig.loss must be one of {LOSSES}, got {self.loss!r}")
        if self.norm not in (1, 2):
            raise ValueError(f"KGEConfig.norm must be 1 or 2, got {self.norm}")
        for name in ("dim", "negatives"):
            if getattr(self, name) < 1:
                raise ValueError(f"KGEConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.margin <= 0:
            raise ValueError(f"KGEConfig.margin must be > 0, got {self.margin}")
        for name in ("adversarial_temperature", "regularization"):
            if getattr(self, name) < 0:
                raise ValueError(f"KGEConfig.{name} must be >= 0, got {getattr(self, name)}")


class _KGENet(torch.nn.Module):
    """Entity and relation tables; ``distance`` broadcasts over candidate entities."""

    def __init__(self, c: KGEConfig, n_entities: int, n_relations: int) -> None:
        super().__init__()
        self.c = c
        width = 2 * c.dim if c.model == "rotate" else c.dim
        self.entity = torch.nn.Parameter(torch.empty(n_entities, width))  # (E, d) or (E, 2d) = [re | im]
        self.relation = torch.nn.Parameter(torch.empty(n_relations, c.dim))  # (R, d): vector or phase
        # RotatE's init: uniform in +-(gamma + 2) / dim, so distances start near gamma
        self.embedding_range = (c.margin + 2.0) / c.dim
        if c.model == "rotate":
            torch.nn.init.uniform_(self.entity, -self.embedding_range, self.embedding_range)
            torch.nn.init.uniform_(self.relation, -self.embedding_range, self.embedding_range)
        else:
            bound = 6.0 / math.sqrt(c.dim)  # Bordes et al.'s init
            torch.nn.init.uniform_(self.entity, -bound, bound)
            torch.nn.init.uniform_(self.relation, -bound, bound)
            with torch.no_grad():
                self.relation.div_(self.relation.norm(dim=1, keepdim=True).clamp_min(1e-12))

    def distance(self, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """d(h, r, t) for broadcastable index tensors h, r, t (e.g. (B, 1) and (B, K)) -> broadcast shape."""
        eh, et, er = self.entity[h], self.entity[t], self.relation[r]  # (..., d)
        if self.c.model == "transe":
            return (eh + er - et).norm(p=self.c.norm, dim=-1)
        d = self.c.dim
        phase = er / (self.embedding_range / math.pi)
        cr, sr = torch.cos(phase), torch.sin(phase)
        hre, him, tre, tim = eh[..., :d], eh[..., d:], et[..., :d], et[..., d:]
        re = hre * cr - him * sr - tre
        im = hre * sr + him * cr - tim
        return torch.sqrt(re * re + im * im + 1e-12).sum(-1)


class KGEmbedding(Trainable):
    """TransE or RotatE embeddings of a :class:`Triples` graph.

    ``fit`` sets ``entity_`` / ``relation_`` (numpy) and returns ``self``; :meth:`entity_vectors`
    gives one row per entity (RotatE: real and imaginary parts side by side), usable as item
    features for fusion. Set ``checkpoint_dir`` (and ``on_epoch`` for progress) before ``fit`` to
    checkpoint every epoch and resume after a kill.
    """

    def __init__(self, config: KGEConfig | None = None) -> None:
        cfg = KGEConfig() if config is None else config
        if not isinstance(cfg, KGEConfig):
            raise ConfigError(f"KGEmbedding takes a KGEConfig, got {type(cfg).__name__}")
        self.config = cfg

    @property
    def name(self) -> str:
        return f"kge-{self.config.model}"

    def fit(self, triples: Triples) -> Self:
        """Train on every triple of ``triples`` for ``epochs`` epochs."""
        c = self.config
        if len(triples) == 0:
            raise ConfigError("KGEmbedding.fit needs at least one triple")
        torch.manual_seed(c.seed)
        self.network_ = _KGENet(c, triples.n_entities, triples.n_relations)
        self._rows = triples.array()  # (n, 3) head, relation, tail
        try:
            self.run_trainer(triples)
            self.entity_ = self.network_.entity.detach().numpy().copy()
            self.relation_ = self.network_.relation.detach().numpy().copy()
        finally:
            del self.network_, self._rows
        self.entities_ = triples.entities
        self.relation_names_ = triples.relation_names
        return self

    # -- the training task (fusionrec.training.task) ----------------------------------------------
    def steps_per_epoch(self, triples: Triples) -> int:
        return math.ceil(len(self._rows) / self.config.batch_size)

    def training_batches(self, triples: Triples, rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
        """Shuffled positives (B,) h, r, t and their corruptions (B, K): the head or the tail replaced."""
        c = self.config
        rows, n_ent = self._rows, triples.n_entities
        perm = rng.permutation(len(rows))
        for start in range(0, len(perm), c.batch_size):
            h, r, t = rows[perm[start:start + c.batch_size]].T  # (B,) each
            neg = rng.integers(0, n_ent, (len(h), c.negatives))  # (B, K)
            corrupt_head = rng.random((len(h), 1)) < 0.5  # (B, 1)
            nh = np.where(corrupt_head, neg, h[:, None])  # (B, K)
            nt = np.where(corrupt_head, t[:, None], neg)
            yield tuple(torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64)) for a in (h, r, t, nh, nt))

    def training_step(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        c = self.config
        h, r, t, nh, nt = batch
        net = self.network_
        d_pos = net.distance(h, r, t)  # (B,)
        d_neg = net.distance(nh, r[:, None], nt)  # (B, K)
        loss = self._loss(d_pos, d_neg)
        if c.regularization:
            loss = loss + c.regularization * (net.entity[h].pow(2).sum(-1) + net.entity[t].pow(2).sum(-1)
                                              + net.relation[r].pow(2).sum(-1)).mean()
        return loss

    def after_step(self) -> None:
        """Bordes et al.'s margin loss keeps the entities in the unit ball (rows of norm > 1 are scaled to 1)."""
        if self.config.model == "transe" and self.config.loss == "margin":
            e = self.network_.entity
            e.div_(e.norm(dim=1, keepdim=True).clamp_min(1.0))

    def data_fingerprint(self, triples: Triples) -> str:
        """A short hash of the triples and the vocabulary sizes (a checkpoint resumes only on the same graph)."""
        h = hashlib.sha1(np.ascontiguousarray(self._rows).tobytes())
        h.update(f"{triples.n_entities}|{triples.n_relations}".encode())
        return h.hexdigest()[:16]

    def _loss(self, d_pos: torch.Tensor, d_neg: torch.Tensor) -> torch.Tensor:
        c = self.config
        F = torch.nn.functional
        if c.loss == "margin":
            return F.relu(c.margin + d_pos[:, None] - d_neg).mean()
        s_neg = c.margin - d_neg  # (B, K)
        if c.adversarial_temperature > 0:
            w = torch.softmax(c.adversarial_temperature * s_neg, dim=1).detach()
        else:
            w = torch.full_like(s_neg, 1.0 / s_neg.shape[1])
        pos = -F.logsigmoid(c.margin - d_pos)  # (B,)
        neg = -(w * F.logsigmoid(-s_neg)).sum(1)  # (B,)
        return ((pos + neg) / 2).mean()

    # ------------------------------------------------------------------ use
    def _check_fitted(self) -> None:
        if not hasattr(self, "entity_"):
            raise NotFittedError("KGEmbedding is not fitted; call .fit(triples) first")

    def _net(self) -> _KGENet:
        self._check_fitted()
        net = _KGENet(self.config, len(self.entity_), len(self.relation_))
        with torch.no_grad():
            net.entity.copy_(torch.from_numpy(self.entity_))
            net.relation.copy_(torch.from_numpy(self.relation_))
        return net

    def entity_vectors(self) -> np.ndarray:
        """(n_entities, d) float32 (RotatE: (n_entities, 2d), real parts then imaginary parts)."""
        self._check_fitted()
        return self.entity_

    def distance(self, heads: np.ndarray, relations: np.ndarray, tails: np.ndarray) -> np.ndarray:
        """d(h, r, t) of given index arrays (broadcast); lower is more plausible."""
        net = self._net()
        with torch.no_grad():
            return net.distance(torch.as_tensor(heads), torch.as_tensor(relations), torch.as_tensor(tails)).numpy()

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write ``kge.safetensors`` and ``kge.json`` (config, entity and relation names) into ``path``."""
        self._check_fitted()
        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        save_file({"entity": self.entity_, "relation": self.relation_}, str(p / WEIGHTS_FILE))
        meta = {"config": dataclasses.asdict(self.config), "entities": [str(x) for x in self.entities_],
                "relations": [str(x) for x in self.relation_names_]}
        (p / META_FILE).write_text(json.dumps(meta))

    @classmethod
    def load(cls, path: str | Path) -> KGEmbedding:
        p = Path(path)
        if not (p / META_FILE).is_file():
            raise ConfigError(f"{p} holds no saved KG embedding ({META_FILE} missing)")
        meta = json.loads((p / META_FILE).read_text())
        try:
            cfg = KGEConfig(**meta["config"])
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{p / META_FILE}: {e}") from e
        m = cls(cfg)
        t = load_file(str(p / WEIGHTS_FILE))
        m.entity_, m.relation_ = t["entity"], t["relation"]
        m.entities_ = np.asarray(meta["entities"], dtype=object)
        m.relation_names_ = np.asarray(meta["relations"], dtype=object)
        return m


def _known_index(known: Triples) -> tuple[dict[tuple[int, int], np.ndarray], dict[tuple[int, int], np.ndarray]]:
    """(h, r) -> true tails and (r, t) -> true heads over ``known``."""
    arr = known.array()
    tails: dict[tuple[int, int], list[int]] = {}
    heads: dict[tuple[int, int], list[int]] = {}
    for h, r, t in arr.tolist():
        tails.setdefault((h, r), []).append(t)
        heads.setdefault((r, t), []).append(h)
    return ({k: np.asarray(v) for k, v in tails.items()}, {k: np.asarray(v) for k, v in heads.items()})


def link_prediction(model: KGEmbedding, test: Triples, known: Triples, *, batch_size: int = 16,
                    ks: tuple[int, ...] = (1, 3, 10)) -> dict[str, float]:
    """Filtered MRR and Hits@k of ``test``, each triple ranked as tail and as head query.

    Every entity is a candidate; the other true triples of ``known`` (train + valid + test) are
    removed from each ranking. Ties with the true entity count half.

    Returns ``{"MRR", "Hits@1", "Hits@3", "Hits@10", "triples"}``.
    """
    if len(test) == 0:
        raise ConfigError("link_prediction needs at least one test triple")
    if model.config is None or len(model.entity_vectors()) != test.n_entities:
        raise ConfigError(f"link_prediction: the model has {len(model.entity_vectors())} entities, the test "
                          f"triples {test.n_entities}; use triples sharing the training vocabulary")
    net = model._net()
    by_hr, by_rt = _known_index(known)
    rows = test.array()
    n_ent = test.n_entities
    all_ent = torch.arange(n_ent)[None, :]  # (1, E)
    ranks: list[np.ndarray] = []
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            b = rows[start:start + batch_size]
            h, r, t = (torch.from_numpy(b[:, i].copy()) for i in range(3))
            for side in ("tail", "head"):
                if side == "tail":
                    d = net.distance(h[:, None], r[:, None], all_ent)  # (B, E)
                    target = t
                else:
                    d = net.distance(all_ent, r[:, None], t[:, None])  # (B, E)
                    target = h
                d_true = d.gather(1, target[:, None])  # (B, 1)
                mask = torch.zeros_like(d, dtype=torch.bool)
                for j, (hh, rr, tt) in enumerate(b.tolist()):
                    other = by_hr.get((hh, rr)) if side == "tail" else by_rt.get((rr, tt))
                    if other is not None:
                        mask[j, torch.from_numpy(other)] = True
                mask[torch.arange(len(b)), target] = False
                better = ((d < d_true) & ~mask).sum(1).double()
                ties = ((d == d_true) & ~mask).sum(1).double() - 1  # minus the true entity itself
                ranks.append((1 + better + ties / 2).numpy())
    rank = np.concatenate(ranks)
    out = {"MRR": float(np.mean(1.0 / rank))}
    for k in ks:
        out[f"Hits@{k}"] = float(np.mean(rank <= k))
    out["triples"] = float(len(rows))
    return out
