"""High-level jobs on the one data path: train a run, cross-validate, build a leaderboard.

The CLI is a thin layer over these functions; each is usable from Python as well.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.data import splits as S
from fusionrec.data.schema import Dataset
from fusionrec.errors import ConfigError
from fusionrec.evaluation.evaluate import EvalResult, evaluate, evaluate_ratings
from fusionrec.models import get_model_class
from fusionrec.models.base import Recommender, config_from_dict
from fusionrec.run import Run, Stopwatch, peak_rss_mb

log = logging.getLogger(__name__)

SPLITS = ("loo", "random-loo", "temporal", "random", "cold-item", "none")


def parse_value(text: str) -> Any:
    """A ``--set`` value: TOML scalar syntax (``3``, ``0.1``, ``true``, ``"x"``), else a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def model_settings(name: str, config_file: str | Path | None = None, sets: Iterable[str] = ()) -> dict[str, Any]:
    """Merge a TOML config file and ``key=value`` overrides into one settings dict for model ``name``.

    The TOML file may hold the keys at top level, or in a ``[model]`` or ``[<name>]`` table.
    ``--set`` keys may be prefixed with ``model.`` or ``<name>.``.
    """
    values: dict[str, Any] = {}
    if config_file is not None:
        p = Path(config_file)
        if not p.exists():
            raise ConfigError(f"config file {p} does not exist")
        try:
            doc = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {p} is not valid TOML: {e}") from e
        for table in ("model", name):
            if isinstance(doc.get(table), dict):
                values.update(doc.pop(table))
        from fusionrec.models.wrapper import WRAPPERS

        sections = {f.name for f in dataclasses.fields(get_model_class(name).Config)} | set(WRAPPERS)
        # scalars, and the tables of this model's config sections and wrappers (e.g. [prior]); other
        # models' tables are left to them
        values.update({k: v for k, v in doc.items() if not isinstance(v, dict) or k in sections})
    for item in sets:
        key, eq, val = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key = key.strip()
        for prefix in ("model.", f"{name}."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        values[key] = parse_value(val.strip())
    return values


def build_model(name: str, settings: dict[str, Any] | None = None) -> Recommender:
    """A model from the registry with a validated config, inside the wrappers its settings switch on
    (``prior``: the item-item prior, on by default for ``fusion``; see :mod:`fusionrec.models.wrapper`)."""
    from fusionrec.models.wrapper import get_wrapper_class, wrapped

    cls = get_model_class(name)
    own, wrappers = wrapped(cls, settings or {}, name)
    model = cls(config_from_dict(cls.Config, own, model=name))
    for wname, values in wrappers:
        wcls = get_wrapper_class(wname)
        model = wcls(model, config_from_dict(wcls.WrapperConfig, values, model=f"{name}.{wname}"))
    return model


def make_split(data: Dataset, protocol: str, seed: int = 0, *, keep_heldout_side_events: bool = False) -> S.Split:
    """One of :data:`SPLITS` applied to ``data``.

    Its parts carry the training view of the side tables (see :mod:`fusionrec.data.splits`);
    ``keep_heldout_side_events=True`` keeps them whole, which leaks held-out signal into training.
    """
    keep = keep_heldout_side_events
    if protocol == "loo":
        return (S.leave_last_out(data, keep_heldout_side_events=keep) if data.has_timestamps
                else S.random_leave_one_out(data, seed=seed, keep_heldout_side_events=keep))
    if protocol == "random-loo":
        return S.random_leave_one_out(data, seed=seed, keep_heldout_side_events=keep)
    if protocol == "temporal":
        return S.temporal_split(data, keep_heldout_side_events=keep)
    if protocol == "random":
        return S.random_split(data, seed=seed, test_frac=0.1, valid_frac=0.1, keep_heldout_side_events=keep)
    if protocol == "cold-item":
        return S.cold_item_split(data, seed=seed, keep_heldout_side_events=keep)
    if protocol == "none":
        return S.Split(data, data.with_interactions(data.interactions.iloc[:0]), None, name="none")
    raise ConfigError(f"unknown split {protocol!r}; known splits: {', '.join(SPLITS)}")


def tune(
    name: str,
    fixed: dict[str, Any],
    train: Dataset,
    valid: Dataset,
    *,
    metric: str = "NDCG@10",
    on_trial: Callable[[dict[str, Any], float], None] | None = None,
    setup: Callable[[Recommender, int], None] | None = None,
) -> tuple[Recommender, list[dict[str, Any]]]:
    """Grid search over the model's ``search_space`` (minus the ``fixed`` settings) on ``valid``.

    ``setup(model, trial_index)`` is called on each model before it is fitted (checkpoint folders).
    Returns the best fitted model and every trial (settings, metric, seconds).
    """
    from itertools import product

    space = {k: v for k, v in getattr(get_model_class(name), "search_space", {}).items() if k not in fixed}
    keys = list(space)
    best: tuple[float, Recommender] | None = None
    trials = []
    for values in product(*(space[k] for k in keys)) if keys else [()]:
        settings = {**fixed, **dict(zip(keys, values, strict=True))}
        model = build_model(name, settings)
        if setup is not None:
            setup(model, len(trials))
        with Stopwatch() as t:
            model.fit(train, valid)
        score = evaluate(model, valid, (10,), distributed=True).metrics[metric] if keys else float("nan")
        trials.append({"settings": dict(zip(keys, values, strict=True)), metric: score, "seconds": round(t.seconds, 3)})
        if on_trial is not None and keys:
            on_trial(trials[-1]["settings"], score)
        if best is None or score > best[0]:
            best = (score, model)
    assert best is not None
    return best[1], trials


def train_run(
    model: Recommender,
    train: Dataset,
    valid: Dataset | None = None,
    *,
    info: dict[str, Any] | None = None,
    valid_ks: tuple[int, ...] = (10, 20),
    tune_settings: dict[str, Any] | None = None,
    on_trial: Callable[[dict[str, Any], float], None] | None = None,
    checkpoint_dir: str | Path | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> Run:
    """Fit ``model`` on ``train``; score ``valid`` when given; return the Run (not yet saved).

    With ``tune_settings`` (the user's fixed settings) and a ``valid`` set, the settings the user did
    not fix are chosen by grid search on ``valid`` (:func:`tune`) and the best model is kept.

    Models trained by the one trainer (:class:`~fusionrec.training.task.Trainable`: torch models, ``mf``,
    ``kg``) checkpoint every epoch into ``checkpoint_dir`` (tuning trials into ``trial-N`` inside it) and
    resume from it after a kill; ``on_epoch`` receives each epoch's log record. Under
    torch.distributed every rank calls this; validation is shared between the ranks.
    """
    from fusionrec.models.torch_base import TorchRecommender
    from fusionrec.models.wrapper import unwrap
    from fusionrec.training.task import Trainable

    def setup(m: Recommender, trial: int | None = None) -> None:
        if isinstance(unwrap(m), Trainable):
            ck = Path(checkpoint_dir) if checkpoint_dir is not None else None
            m.checkpoint_dir = ck / f"trial-{trial}" if ck is not None and trial is not None else ck
            m.on_epoch = on_epoch
        if isinstance(unwrap(m), TorchRecommender):
            m.init_from = getattr(model, "init_from", None)

    trials = None
    open_settings = [k for k in getattr(model, "search_space", {}) if k not in (tune_settings or {})]
    with Stopwatch() as t:
        if tune_settings is not None and valid is not None and valid.n_interactions and open_settings:
            model, trials = tune(model.name, tune_settings, train, valid, on_trial=on_trial, setup=setup)
        else:
            setup(model)
            model.fit(train, valid)
    meta = {
        "dataset": train.name,
        "train_interactions": train.n_interactions,
        "n_users": train.n_users,
        "n_items": train.n_items,
        "train_seconds": round(t.seconds, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "command": " ".join(sys.argv),
        **(info or {}),
    }
    if getattr(model, "stages_", None):  # a stacked fit: whether the content stage improved the valid metric
        meta["stages"] = model.stages_
    if getattr(model, "prior_log_", None):  # the item-item prior's gate was fit on valid: its metrics lean optimistic
        meta["prior"] = model.prior_log_
    if trials is not None and len(trials) > 1:
        meta["tuning"] = trials
        meta["config"] = dataclasses.asdict(model.config)
    metrics = None
    if valid is not None and valid.n_interactions:
        metrics = evaluate(model, valid, valid_ks, distributed=True).metrics
        if hasattr(model, "predict") and "rating" in valid.interactions.columns:
            metrics.update(evaluate_ratings(model, valid, distributed=True))
    return Run(model, train.user_ids, train.item_ids, meta, metrics)


def cross_validate(
    data: Dataset,
    model_name: str,
    settings: dict[str, Any] | None = None,
    *,
    folds: int | None = 5,
    rolling: int | None = None,
    ks: tuple[int, ...] = (10, 20),
    seed: int = 0,
    on_fold: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, tuple[float, float, list[float]]]:
    """k-fold (by user) or rolling-origin CV; returns metric -> (mean, std, per-fold values)."""
    if rolling is not None:
        parts = list(S.rolling_origin(data, n_splits=rolling))
    else:
        parts = list(S.kfold(data, folds=folds or 5, seed=seed))
    rows: list[dict[str, float]] = []
    for f, sp_ in enumerate(parts):
        model = build_model(model_name, settings)
        with Stopwatch() as t:
            model.fit(sp_.train)
        res = evaluate(model, sp_.test, ks).metrics
        if hasattr(model, "predict") and "rating" in sp_.test.interactions.columns:
            res.update(evaluate_ratings(model, sp_.test))
        res["train_seconds"] = t.seconds
        rows.append(res)
        if on_fold is not None:
            on_fold(f, res)
    out = {}
    for key in rows[0]:
        vals = [r[key] for r in rows]
        out[key] = (float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0, vals)
    return out


def leaderboard(
    data: Dataset,
    models: Iterable[str],
    *,
    protocol: str = "loo",
    ks: tuple[int, ...] = (10, 20),
    seed: int = 0,
    tune_on_valid: bool = True,
    on_result: Callable[[str, dict[str, float]], None] | None = None,
    on_model: Callable[[str, Recommender, S.Split], None] | None = None,
) -> list[dict[str, Any]]:
    """Train each model on one split and evaluate it on the test users (valid events as history).

    As in ``fusionrec train``, settings are tuned on the valid part first (``train_seconds``
    includes the tuning). ``on_model(name, model, split)`` receives each fitted model (e.g. to save it).
    """
    split = make_split(data, protocol, seed)
    extra = split.valid.csr("order") if split.valid is not None and split.valid.n_interactions else None
    candidates = None
    if split.cold_items is not None:  # cold-item protocol: rank among the held-out items only
        candidates = np.zeros(data.n_items, dtype=bool)
        candidates[split.cold_items] = True
    rows = []
    for name in models:
        with Stopwatch() as t:
            if tune_on_valid and split.valid is not None and split.valid.n_interactions:
                model, _ = tune(name, {}, split.train, split.valid)
            else:
                model = build_model(name).fit(split.train, split.valid)
        res: EvalResult = evaluate(model, split.test, ks, extra_history=extra, candidates=candidates)
        row = {"model": name, **res.metrics, "train_s": t.seconds,
               "settings": {k: getattr(model.config, k) for k in getattr(model, "search_space", {})}}
        rows.append(row)
        if on_result is not None:
            on_result(name, row)
        if on_model is not None:
            on_model(name, model, split)
    return rows
