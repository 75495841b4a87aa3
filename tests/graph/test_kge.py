"""TransE / RotatE recover a planted structure; filtered link prediction; save/load."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fusionrec.errors import ConfigError, NotFittedError
from fusionrec.graph.kge import KGEConfig, KGEmbedding, link_prediction
from fusionrec.graph.triples import Triples, split_triples
from tests.training.interrupt import Stop, stop_after


def planted(n_groups: int = 12, size: int = 8, seed: int = 0) -> Triples:
    """Members of each group point to their group's hub (member_of) and to the next member (next)."""
    rng = np.random.default_rng(seed)
    h, r, t = [], [], []
    for g in range(n_groups):
        members = [f"g{g}m{k}" for k in range(size)]
        for k, m in enumerate(members):
            h.append(m), r.append("member_of"), t.append(f"hub{g}")
            h.append(m), r.append("next"), t.append(members[(k + 1) % size])
    order = rng.permutation(len(h))
    return Triples.from_labels(np.asarray(h)[order], np.asarray(r)[order], np.asarray(t)[order])


@pytest.fixture(scope="module")
def world() -> tuple[Triples, Triples, Triples]:
    t = planted()
    train, _, test = split_triples(t, 0.0, 0.15, seed=0)
    return t, train, test


@pytest.mark.parametrize("model", ["transe", "rotate"])
def test_link_prediction_beats_random_by_far(model: str, world: tuple[Triples, Triples, Triples]) -> None:
    """Seeds 0-19 at 1 thread, 0-4 at 2 threads and on torch's AVX2 kernels: MRR 9.2-11.3 times
    random's and Hits@10 0.62-0.89 (TransE), 0.91-1.00 (RotatE), against bars of 5 times and 0.5.
    (At 60 epochs and lr 0.02 RotatE's MRR was 1.9-8.5 times random's and its Hits@10 0.18-0.82, TransE's
    Hits@10 0.50-0.70: seed 0 passed, seeds 1 and 3 did not.)"""
    known, train, test = world
    m = KGEmbedding(KGEConfig(model=model, dim=16, epochs=100, batch_size=64, negatives=16, lr=0.05,
                              margin=4.0)).fit(train)
    res = link_prediction(m, test, known)
    random_mrr = float(np.mean(1.0 / np.arange(1, known.n_entities + 1)))  # ~0.05 for 108 entities
    assert res["MRR"] > 5 * random_mrr, res
    assert res["Hits@10"] > 0.5, res
    assert 0 <= res["Hits@1"] <= res["Hits@3"] <= res["Hits@10"] <= 1
    assert res["triples"] == len(test)


def test_untrained_embeddings_do_not_pass_the_bar(world: tuple[Triples, Triples, Triples]) -> None:
    known, train, test = world  # the bar above can fail: one epoch of tiny lr stays near random
    # (Hits@10 0.02-0.09 over seeds 0-4)
    m = KGEmbedding(KGEConfig(model="transe", dim=16, epochs=1, lr=1e-5)).fit(train)
    assert link_prediction(m, test, known)["Hits@10"] < 0.5


def test_filtering_removes_other_true_triples() -> None:
    # a -r-> b and a -r-> c: ranking the tail of (a, r, c), b must not count against c
    t = Triples.from_labels(["a", "a"], ["r", "r"], ["b", "c"])
    m = KGEmbedding(KGEConfig(dim=2, epochs=1)).fit(t)
    m.entity_ = np.array([[0.0, 0.0], [1.0, 0.0], [1.1, 0.0]], dtype=np.float32)  # a, b, c
    m.relation_ = np.array([[1.0, 0.0]], dtype=np.float32)
    only_c = t.subset(np.array([False, True]))
    tail_rank = link_prediction(m, only_c, t)  # b filtered: c ranks 1st as tail
    unfiltered = link_prediction(m, only_c, only_c)  # b not filtered: c ranks 2nd as tail
    assert tail_rank["MRR"] > unfiltered["MRR"]


def test_entity_vectors_shapes_save_load(tmp_path: Path, world: tuple[Triples, Triples, Triples]) -> None:
    known, train, test = world
    for model, width in (("transe", 8), ("rotate", 16)):
        m = KGEmbedding(KGEConfig(model=model, dim=8, epochs=2)).fit(train)
        assert m.entity_vectors().shape == (known.n_entities, width)
        m.save(tmp_path / model)
        back = KGEmbedding.load(tmp_path / model)
        assert back.config == m.config
        np.testing.assert_array_equal(back.entity_vectors(), m.entity_vectors())
        assert link_prediction(back, test, known) == link_prediction(m, test, known)
        assert list(back.entities_) == list(known.entities)


def test_same_seed_same_vectors(world: tuple[Triples, Triples, Triples]) -> None:
    _, train, _ = world
    a = KGEmbedding(KGEConfig(model="rotate", dim=4, epochs=3)).fit(train).entity_vectors()
    b = KGEmbedding(KGEConfig(model="rotate", dim=4, epochs=3)).fit(train).entity_vectors()
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("model", "distmult", "model must be one of"), ("dim", 0, "dim must be >= 1"), ("norm", 3, "norm must be 1 or 2"),
    ("loss", "bce", "loss must be one of"), ("lr", 0.0, "lr must be > 0"),
])
def test_bad_config(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        KGEConfig(**{field: value})


def test_errors_before_fit_and_on_empty_input(tmp_path: Path) -> None:
    m = KGEmbedding()
    with pytest.raises(NotFittedError, match="not fitted"):
        m.entity_vectors()
    with pytest.raises(ConfigError, match="at least one triple"):
        m.fit(Triples.from_labels([], [], []))
    with pytest.raises(ConfigError, match="KGEConfig"):
        KGEmbedding(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no saved KG embedding"):
        KGEmbedding.load(tmp_path)


# ---------------------------------------------------------------------------------------------- the one trainer
@pytest.mark.parametrize(("model", "loss"), [("transe", "margin"), ("transe", "adversarial"), ("rotate", "adversarial")])
def test_resume_after_an_interruption_gives_the_uninterrupted_vectors(
        model: str, loss: str, world: tuple[Triples, Triples, Triples], tmp_path: Path) -> None:
    _, train, _ = world
    cfg = KGEConfig(model=model, loss=loss, dim=8, epochs=5, batch_size=64, negatives=8, lr=0.02)
    full = KGEmbedding(cfg).fit(train)
    cut = KGEmbedding(cfg)
    cut.checkpoint_dir, cut.on_epoch = tmp_path, stop_after(2)
    with pytest.raises(Stop):
        cut.fit(train)
    resumed = KGEmbedding(cfg)
    resumed.checkpoint_dir = tmp_path
    resumed.fit(train)
    assert [h.get("resumed_from") for h in resumed.training_log_] == [None, None, 2, None, None]
    assert [h["loss"] for h in resumed.training_log_] == [h["loss"] for h in full.training_log_]
    np.testing.assert_array_equal(resumed.entity_vectors(), full.entity_vectors())
    np.testing.assert_array_equal(resumed.relation_, full.relation_)


def test_margin_loss_keeps_transe_entities_in_the_unit_ball(world: tuple[Triples, Triples, Triples]) -> None:
    _, train, _ = world
    cfg = KGEConfig(model="transe", loss="margin", dim=8, epochs=3, lr=0.5)  # a large step leaves the ball
    assert np.linalg.norm(KGEmbedding(cfg).fit(train).entity_vectors(), axis=1).max() <= 1.0 + 1e-6
    free = KGEmbedding(replace(cfg, loss="adversarial")).fit(train).entity_vectors()
    assert np.linalg.norm(free, axis=1).max() > 1.0


def test_another_seed_other_vectors(world: tuple[Triples, Triples, Triples]) -> None:
    _, train, _ = world
    a = KGEmbedding(KGEConfig(model="transe", dim=4, epochs=2, seed=0)).fit(train).entity_vectors()
    b = KGEmbedding(KGEConfig(model="transe", dim=4, epochs=2, seed=1)).fit(train).entity_vectors()
    assert not np.array_equal(a, b)
