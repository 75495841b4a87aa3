"""Wrappers: one behaviour added around any model of the one protocol (scikit-learn's meta-estimators).

A :class:`Wrapper` holds an inner :class:`~fusionrec.models.base.Recommender`, fits it, then fits its
own state, and adjusts the inner model's scores. Everything else (explanations, new items, id maps,
the inner model's learned state) is read through to the inner model, so a wrapped model goes
wherever a plain one goes: ``train``, ``recommend``, ``evaluate``, a saved run.

Wrappers are declared in :data:`WRAPPERS` and listed in a saved model's ``model.json`` under
``"wrappers"``; :meth:`Recommender.load <fusionrec.models.base.Recommender.load>` rebuilds them around
the loaded inner model.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp
from safetensors.numpy import load_file, save_file

from fusionrec.data.schema import Dataset
from fusionrec.errors import unknown_name
from fusionrec.models.base import META_FILE, Recommender, config_from_dict
from fusionrec.models.history import History

#: wrapper name -> "module:Class"
WRAPPERS: dict[str, str] = {"prior": "fusionrec.models.prior:WithItemPrior",
                             "side_events": "fusionrec.models.side_history:WithSideEvents"}

#: attributes set on a model by the jobs and the CLI that belong to the inner (trained) model
_FORWARDED = frozenset({"checkpoint_dir", "on_epoch", "init_from", "pretrain_only"})


def get_wrapper_class(name: str) -> type[Wrapper]:
    if name not in WRAPPERS:
        raise unknown_name("wrapper", name, list(WRAPPERS))
    module, cls = WRAPPERS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def wrapped(cls: type[Recommender], settings: dict[str, Any], model: str
            ) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """Split a model's settings into its own and its wrappers' ``[(wrapper, settings)]`` (innermost first).

    A wrapper is switched by its name (``prior=true``/``false``; default: on for the wrappers in the
    class's ``default_wrappers``) and set by ``<name>.<key>=value``, a ``<name>`` table (TOML), or the
    older flat ``<name>_<key>`` form.
    """
    own = dict(settings)
    out = []
    for wname in WRAPPERS:
        on = wname in getattr(cls, "default_wrappers", ())
        values: dict[str, Any] = {}
        if wname in own:
            v = own.pop(wname)
            if isinstance(v, dict):
                values.update(v)
                on = bool(values.pop("enabled", True))
            elif isinstance(v, bool):
                on = v
            else:
                from fusionrec.errors import ConfigError

                raise ConfigError(f"{model}.{wname} must be true or false (or a table of {wname} settings), got {v!r}")
        for key in [k for k in own if k.startswith(f"{wname}.") or k.startswith(f"{wname}_")]:
            values[key[len(wname) + 1:]] = own.pop(key)
        if values and not on and wname in settings:
            from fusionrec.errors import ConfigError

            raise ConfigError(f"{model}: {wname} settings {sorted(values)} given with {wname}=false")
        if on:
            out.append((wname, values))
    return own, out


def unwrap(model: Any) -> Any:
    """The innermost model under any wrappers."""
    while isinstance(model, Wrapper):
        model = model.inner
    return model


class Wrapper(Recommender):
    """Base class of wrappers: subclasses set ``wrapper_name`` and ``WrapperConfig`` and implement
    ``_fit_wrapper`` and ``_adjust`` (and ``_wrapper_state`` / ``_load_wrapper_state`` for persistence)."""

    wrapper_name: ClassVar[str] = "wrapper"
    WrapperConfig: ClassVar[type] = object

    def __init__(self, inner: Recommender, config: Any | None = None) -> None:  # noqa: D107
        object.__setattr__(self, "inner", inner)
        cfg = self.WrapperConfig() if config is None else config
        if not isinstance(cfg, self.WrapperConfig):
            raise TypeError(f"{type(self).__name__} takes a {self.WrapperConfig.__name__}, got {type(cfg).__name__}")
        object.__setattr__(self, "wrapper_config", cfg)

    # -- read through to the inner model --------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (during unpickling or a failed __init__)
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _FORWARDED:
            setattr(self.inner, name, value)
        else:
            object.__setattr__(self, name, value)

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.inner.name

    @property
    def config(self) -> Any:  # type: ignore[override]
        return self.inner.config

    @property
    def uses_content(self) -> bool:  # type: ignore[override]
        return self.inner.uses_content

    @property
    def search_space(self) -> dict[str, list[Any]]:  # type: ignore[override]
        return self.inner.search_space

    def settings(self) -> dict[str, Any]:
        """The inner model's settings with this wrapper's as a table under :attr:`wrapper_name`."""
        return {**self.inner.settings(), self.wrapper_name: dataclasses.asdict(self.wrapper_config)}

    def user_history(self, users: np.ndarray, extra: sp.csr_matrix | None = None) -> History:
        return self.inner.user_history(users, extra)

    def train_sequences(self) -> tuple[np.ndarray, np.ndarray]:
        return self.inner.train_sequences()

    # -- the protocol ---------------------------------------------------------------------------
    def fit(self, train: Dataset, valid: Dataset | None = None) -> Self:
        self._before_fit(train, valid)
        self.inner.fit(train, valid)
        self._fit_wrapper(train, valid)
        return self

    def _before_fit(self, train: Dataset, valid: Dataset | None) -> None:
        """Checks that must fail before the (possibly long) inner training."""

    def _fit_wrapper(self, train: Dataset, valid: Dataset | None) -> None:
        raise NotImplementedError

    def _check_fitted(self) -> None:
        self.inner._check_fitted()

    def score(self, users: np.ndarray, history: History | sp.csr_matrix | None = None, *,
              out: np.ndarray | None = None) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        hist = self.inner.as_history(users, history)
        s = self.inner.score(users, hist, out=out)
        self._adjust(s, users, hist)
        return s

    def _adjust(self, scores: np.ndarray, users: np.ndarray, history: History) -> None:
        """Change the inner model's (b, n_items) ``scores`` in place."""
        raise NotImplementedError

    # -- persistence ----------------------------------------------------------------------------
    def _wrapper_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays (safetensors) and JSON-able metadata of this wrapper's fitted state."""
        return {}, {}

    def _load_wrapper_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Restore what :meth:`_wrapper_state` returned."""

    def save(self, path: str | Path) -> None:
        """The inner model's files, then ``wrap-<name>.safetensors`` and the wrapper's entry in ``model.json``."""
        path = Path(path)
        self.inner.save(path)
        arrays, meta = self._wrapper_state()
        file = f"wrap-{self.wrapper_name}.safetensors"
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()} or {"empty": np.zeros(0)}, str(path / file))
        doc = json.loads((path / META_FILE).read_text())
        doc.setdefault("wrappers", []).append({"name": self.wrapper_name, "file": file,
                                               "config": dataclasses.asdict(self.wrapper_config), "meta": meta})
        (path / META_FILE).write_text(json.dumps(doc, indent=1))

    @classmethod
    def restore(cls, inner: Recommender, path: Path, entry: dict[str, Any]) -> Wrapper:
        """A wrapper of ``inner`` from its ``model.json`` entry and state file in ``path``."""
        cfg = config_from_dict(cls.WrapperConfig, entry.get("config", {}), model=cls.wrapper_name)
        w = cls(inner, cfg)
        arrays = {k: v for k, v in load_file(str(path / entry["file"])).items() if k != "empty"}
        w._load_wrapper_state(arrays, entry.get("meta", {}))
        return w
