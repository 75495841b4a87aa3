"""The one model protocol every recommender follows.

A model is a plain class: the constructor takes a typed config, ``fit`` sets learned state
(attributes ending in ``_``) and returns ``self``, ``score`` maps users (with their current
history) to item scores, and ``save``/``load`` round-trip through safetensors + JSON (no pickle).

History is an input of ``score``, not frozen state: events that arrive after training (the CLI's
``--history``) change a user's recommendations without retraining. A scoring call keeps nothing on
the model (see :mod:`fusionrec.models.history`), so one loaded model serves many threads at once.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import warnings
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp
import torch
from safetensors.numpy import load_file, save_file

from fusionrec.data.schema import Dataset
from fusionrec.errors import ConfigError, NotFittedError
from fusionrec.evaluation.ranking import batch_size_for, tie_noise, topk
from fusionrec.models.history import History

log = logging.getLogger(__name__)

#: Score given to items a model knows nothing about (never seen in training, no content).
UNKNOWN_ITEM_SCORE = -1.0e30

WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"


@dataclasses.dataclass(frozen=True)
class BaseConfig:
    """Fields every model config has."""

    seed: int = 0


def _section(f: dataclasses.Field) -> type | None:
    """The dataclass type of a config field that is a section (``field(default_factory=SectionConfig)``)."""
    factory = f.default_factory  # type: ignore[misc]
    return factory if isinstance(factory, type) and dataclasses.is_dataclass(factory) else None


def config_from_dict(cls: type, values: dict[str, Any], *, model: str = "model") -> Any:
    """Build a frozen config dataclass from a dict; unknown keys fail with the known ones listed.

    A field whose default is a config dataclass is a *section*: it takes a dict (a TOML table),
    dotted keys (``text.encoder=minilm``), or, when the section has an ``enabled`` field, a bool
    (``text=false``). A config's ``renamed_settings`` maps older names to the current ones (dotted
    paths allowed); they are read with a warning.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    renamed = getattr(cls, "renamed_settings", {})  # old name -> new name (saved runs, scripts)
    for old in [k for k in values if k in renamed and k not in fields]:
        new = renamed[old]
        if new in values:
            raise ConfigError(f"{model}: both {old!r} and {new!r} given; {old!r} is the old name of {new!r}, keep one")
        warnings.warn(f"{model}: setting {old!r} is now called {new!r}; reading it as {new}={values[old]!r}",
                      FutureWarning, stacklevel=2)
        values = {(new if k == old else k): v for k, v in values.items()}
    sections: dict[str, dict[str, Any]] = {}
    flat: dict[str, Any] = {}
    for k, v in values.items():
        head, dot, rest = k.partition(".")
        kind = _section(fields[head]) if head in fields else None
        if dot:
            if kind is None:
                raise ConfigError(f"{model}: unknown setting {k!r}; sections: "
                                  f"{sorted(n for n, f in fields.items() if _section(f))}")
            sections.setdefault(head, {})[rest] = v
        elif kind is not None:
            if isinstance(v, dict):
                sections.setdefault(head, {}).update(v)
            elif isinstance(v, bool) and "enabled" in {f.name for f in dataclasses.fields(kind)}:
                sections.setdefault(head, {})["enabled"] = v
            else:
                raise ConfigError(f"{model}.{k} is a section: give true/false, a table, or {k}.<setting>=value; "
                                  f"got {v!r}")
        else:
            flat[k] = v
    unknown = sorted(set(flat) - set(fields))
    if unknown:
        raise ConfigError(f"{model}: unknown setting(s) {unknown}; known settings: {sorted(fields)}")
    conv: dict[str, Any] = {}
    for k, v in flat.items():
        default = fields[k].default
        if isinstance(default, bool):
            if not isinstance(v, bool):
                raise ConfigError(f"{model}.{k} must be true or false, got {v!r}")
        elif isinstance(default, int):
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            if not isinstance(v, int) or isinstance(v, bool):
                raise ConfigError(f"{model}.{k} must be an integer, got {v!r}")
        elif isinstance(default, float):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ConfigError(f"{model}.{k} must be a number, got {v!r}")
            v = float(v)
        elif isinstance(default, str) and not isinstance(v, str):
            raise ConfigError(f"{model}.{k} must be a string, got {v!r}")
        conv[k] = v
    for head, sub in sections.items():
        conv[head] = config_from_dict(_section(fields[head]), sub, model=f"{model}.{head}")  # type: ignore[arg-type]
    try:
        return cls(**conv)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{model}: {e}") from e


def take_rows(m: sp.csr_matrix, users: np.ndarray) -> sp.csr_matrix:
    """Rows ``users`` of ``m``; indices past its last row give empty rows (new users)."""
    inside = users < m.shape[0]
    if inside.all():
        return m[users]
    r = m[np.where(inside, users, 0)] if m.shape[0] else sp.csr_matrix((len(users), m.shape[1]), dtype=m.dtype)
    return sp.csr_matrix(sp.diags(inside.astype(m.dtype)) @ r)


class Recommender:
    """Base class: subclasses set ``name`` and ``Config`` and implement ``_fit`` and ``_score``.

    Subclasses that learn per-user state (factor models) receive the current history in
    ``_score`` and decide whether to fold it in; history-based models (EASE, ItemKNN) just use it.
    """

    name: ClassVar[str] = "base"
    Config: ClassVar[type] = BaseConfig
    #: True for models that score items from content (they can rank items unseen in training).
    uses_content: ClassVar[bool] = False
    #: users without any history get popularity scores (models with their own fallback opt out)
    popularity_fallback: ClassVar[bool] = True
    #: settings grid searched on a validation set when tuning is asked for (see fusionrec.jobs.tune)
    search_space: ClassVar[dict[str, list[Any]]] = {}
    #: True for models whose ``_score`` reads the order of a history (it then gets the :class:`History`
    #: itself); the others get its binary (b, n_items) CSR
    ordered_history: ClassVar[bool] = False
    #: wrappers (fusionrec.models.wrapper.WRAPPERS) this model gets unless its settings switch them off
    default_wrappers: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Any | None = None) -> None:
        cfg = self.Config() if config is None else config
        if not isinstance(cfg, self.Config):
            raise ConfigError(f"{type(self).__name__} takes a {self.Config.__name__}, got {type(cfg).__name__}")
        self.config = cfg

    # ------------------------------------------------------------------ training
    def fit(self, train: Dataset, valid: Dataset | None = None) -> Self:
        """Learn from ``train``; ``valid`` (held-out interactions) is for early stopping / tuning."""
        if train.n_interactions == 0:
            raise ConfigError("cannot fit on an empty training set")
        self.n_users_ = train.n_users
        self.n_items_ = train.n_items
        self.train_matrix_ = train.csr("binary")
        self.item_popularity_ = np.asarray(self.train_matrix_.sum(axis=0)).ravel().astype(np.float32)
        try:
            self._fit(train, valid)
        except BaseException:
            del self.train_matrix_  # a failed fit leaves the model unfitted
            raise
        return self

    def _fit(self, train: Dataset, valid: Dataset | None) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ scoring
    def _check_fitted(self) -> None:
        if not hasattr(self, "train_matrix_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call .fit(train) first")

    def train_sequences(self) -> tuple[np.ndarray, np.ndarray]:
        """Each training user's events as CSR-like ``(indptr, items)`` in the order the model learned them
        (item order here; time order for sequence models)."""
        m = self.train_matrix_
        return m.indptr, m.indices

    def user_history(self, users: np.ndarray, extra: sp.csr_matrix | None = None) -> History:
        """The users' current history: their training events, then the events of ``extra``.

        ``extra`` is a (n_any, n_items) CSR indexed by dense user index whose values order its events
        (``Dataset.csr("order")``; 1 = oldest); users beyond the training range (new users) have only
        their ``extra`` events.
        """
        self._check_fitted()
        indptr, items = self.train_sequences()
        return History.build(np.asarray(users, dtype=np.int64), indptr, items, self.train_matrix_.shape[0],
                             self.n_items_, extra)

    def history_for(self, users: np.ndarray, extra: sp.csr_matrix | None = None) -> sp.csr_matrix:
        """Binary history rows (len(users), n_items): training items plus ``extra`` events
        (:meth:`user_history` as a matrix)."""
        return self.user_history(users, extra).binary

    def as_history(self, users: np.ndarray, history: History | sp.csr_matrix | None) -> History:
        """``history`` as a :class:`History` of ``users``: None = the training history; a binary CSR is the
        whole current history (training events in their order, then the other items in index order)."""
        users = np.asarray(users, dtype=np.int64)
        if history is None:
            return self.user_history(users)
        if isinstance(history, History):
            if len(history) != len(users):
                raise ValueError(f"history has {len(history)} rows for {len(users)} users")
            return history
        indptr, items = self.train_sequences()
        return History.from_binary(users, history, indptr, items, self.train_matrix_.shape[0])

    def score(self, users: np.ndarray, history: History | sp.csr_matrix | None = None, *,
              out: np.ndarray | None = None) -> np.ndarray:
        """Scores of every item for each user: a pure function of the learned state and the arguments.

        Parameters
        ----------
        users : (b,) dense user indices (indices >= the training range are new users).
        history : each user's current history: a :class:`History` (:meth:`user_history`), or a
            (b, n_items) binary CSR of it; defaults to training.
        out : optional (b, n_items) float32 buffer that factor models write into (no allocation).

        Returns
        -------
        (b, n_items) float32; items never seen in training get :data:`UNKNOWN_ITEM_SCORE` unless
        the model uses content.
        """
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        hist = self.as_history(users, history)
        history = hist.binary
        factors = self._factors(users, history)
        if factors is not None:  # u @ V.T (+ bias), written into the caller's buffer when given
            u, v, bias = factors
            s = out if out is not None and out.shape == (len(users), v.shape[0]) else np.empty(
                (len(users), v.shape[0]), dtype=np.float32)
            torch.matmul(torch.from_numpy(np.ascontiguousarray(u, dtype=np.float32)),
                         torch.from_numpy(np.asarray(v, dtype=np.float32)).T, out=torch.from_numpy(s))
            if bias is not None:
                s += bias
        else:
            s = np.asarray(self._score(users, hist if self.ordered_history else history), dtype=np.float32)
        empty = hist.lengths == 0
        if empty.any() and self.popularity_fallback and not self.uses_content:  # no history: popularity
            s[empty] = self.item_popularity_
        if not self.uses_content:
            s[:, self.item_popularity_ == 0] = UNKNOWN_ITEM_SCORE
        return s

    def _score(self, users: np.ndarray, history: Any) -> np.ndarray:
        """(b, n_items) scores; ``history`` is the binary CSR, or the :class:`History` when
        :attr:`ordered_history`."""
        raise NotImplementedError

    def _factors(self, users: np.ndarray, history: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
        """Factor models return ``(user_vectors (b, f), item_vectors (n_items, f), item_bias or None)``
        instead of implementing ``_score``; the product is then computed into a reused buffer."""
        return None

    def recommend(
        self,
        users: np.ndarray | list[int],
        k: int = 10,
        *,
        extra_history: sp.csr_matrix | None = None,
        exclude_seen: bool = True,
        candidates: np.ndarray | None = None,
        batch_size: int | None = None,
        progress: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` item indices per user, best first, batched over users.

        Returns ``(items, scores)``, each (len(users), k); ``items`` is -1 where fewer than ``k``
        items are eligible. Seen items (training + ``extra_history``) are excluded unless
        ``exclude_seen`` is False. ``candidates`` is a bool mask (n_items,) restricting the ranking.
        """
        if k <= 0:
            raise ConfigError(f"k must be a positive integer, got {k}")
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        noise = tie_noise(self.n_items_, getattr(self.config, "seed", 0))
        bs = batch_size or batch_size_for(self.n_items_)
        out_items = np.empty((len(users), k), dtype=np.int64)
        out_scores = np.empty((len(users), k), dtype=np.float32)
        buf = np.empty((min(bs, len(users)), self.n_items_), dtype=np.float32)
        for start in range(0, len(users), bs):
            b = users[start:start + bs]
            hist = self.user_history(b, extra_history)
            s = self.score(b, hist, out=buf[: len(b)])
            items, vals = topk(s, k, exclude=hist.binary if exclude_seen else None, candidates=candidates,
                               noise=noise)
            out_items[start:start + len(b)] = items
            out_scores[start:start + len(b)] = vals
            if progress is not None:
                progress(len(b))
        return out_items, out_scores

    # ------------------------------------------------------------------ persistence
    def settings(self) -> dict[str, Any]:
        """The settings that rebuild this model (its config as a dict; wrappers add their own tables)."""
        return dataclasses.asdict(self.config)

    def _state(self) -> dict[str, np.ndarray]:
        """Learned arrays to save (besides the training matrix and popularity)."""
        return {}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore learned arrays saved by :meth:`_state`."""

    def save(self, path: str | Path) -> None:
        """Write ``model.safetensors`` and ``model.json`` into directory ``path``."""
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        m = self.train_matrix_.tocsr()
        tensors = {
            "train.indptr": m.indptr.astype(np.int64),
            "train.indices": m.indices.astype(np.int64),
            "item_popularity": self.item_popularity_,
        }
        for key, arr in self._state().items():
            tensors[f"state.{key}"] = np.ascontiguousarray(arr)
        save_file(tensors, str(path / WEIGHTS_FILE))
        meta = {"model": self.name, "config": dataclasses.asdict(self.config),
                "n_users": int(self.n_users_), "n_items": int(self.n_items_)}
        (path / META_FILE).write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Load a model written by :meth:`save` (the right subclass is chosen from ``model.json``)."""
        from fusionrec.models import get_model_class

        path = Path(path)
        meta = json.loads((path / META_FILE).read_text())
        klass = get_model_class(meta["model"]) if cls is Recommender else cls
        cfg = config_from_dict(klass.Config, meta["config"], model=meta["model"])
        model = klass(cfg)
        t = load_file(str(path / WEIGHTS_FILE))
        model.n_users_, model.n_items_ = int(meta["n_users"]), int(meta["n_items"])
        indptr, indices = t["train.indptr"], t["train.indices"]
        model.train_matrix_ = sp.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr),
                                            shape=(len(indptr) - 1, model.n_items_))
        model.item_popularity_ = t["item_popularity"]
        model._load_state({k[len("state."):]: v for k, v in t.items() if k.startswith("state.")})
        if meta.get("wrappers"):
            from fusionrec.models.wrapper import get_wrapper_class

            for entry in meta["wrappers"]:  # innermost first, as they were saved
                model = get_wrapper_class(entry["name"]).restore(model, path, entry)
        return model
