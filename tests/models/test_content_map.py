"""The content -> item-vector ridge map for items unseen in training."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fusionrec.encoders.attributes import encode_attributes
from fusionrec.encoders.content import ContentFeatures
from fusionrec.models.content_map import ContentMap, design_matrix


def features(n: int = 400, seed: int = 0) -> tuple[ContentFeatures, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"genre": rng.choice(["a", "b", "c"], n),
                          "tags": ["|".join(rng.choice(list("wxyz"), 2, replace=False)) for _ in range(n)],
                          "year": rng.uniform(1950, 2000, n)})
    a = encode_attributes(frame, {"genre": "categorical", "tags": "multi", "year": "numeric"})
    text = rng.standard_normal((n, 8)).astype(np.float32) * 5
    present = rng.random(n) > 0.1
    c = ContentFeatures(n=n, vectors={"text": text}, present={"text": present}, categorical=a.categorical,
                        multi=a.multi, numeric=a.numeric, numeric_missing=a.numeric_missing, vocab=a.vocab, info={},
                        numeric_columns=a.numeric_columns, numeric_stats=a.numeric_stats)
    return c, frame["year"].to_numpy()


def test_design_columns() -> None:
    c, _ = features()
    d, scales = design_matrix(c)
    bins = len(c.numeric_stats["year"]) - 3
    assert d.shape == (c.n, 8 + 1 + 3 + 4 + 2 + bins + 1) and d.dtype == np.float32
    assert scales["text"] > 1  # fitted: mean norm of the present rows
    assert np.allclose(np.linalg.norm(d[c.present["text"], :8], axis=1).mean(), 1.0, atol=1e-5)
    assert (d[~c.present["text"], :9] == 0).all()  # missing vectors and their presence flag
    assert (d[:, 9:12].sum(1) == 1).all() and (d[:, 12:16].sum(1) == 2).all()  # one-hot genre, 2 tags
    assert (d[:, -1] == 1).all()
    d2, _ = design_matrix(c, scales)
    np.testing.assert_array_equal(d, d2)


def test_fit_recovers_a_nonlinear_year_effect_and_round_trips() -> None:
    """Targets depend on genre and on the year through a step: the piecewise-linear bins carry the step.

    A closed form (no threads in play); with the features, targets and holdout drawn from seeds 0-9 the
    cold error is 0.012-0.065 of the mean predictor's (bar 0.15), and the chosen l2 0.1 or 1.0."""
    c, year = features()
    rng = np.random.default_rng(1)
    g = rng.standard_normal((4, 6))
    v = g[c.categorical["genre"]] + np.where(year > 1990, 3.0, 0.0)[:, None] + 0.05 * rng.standard_normal((c.n, 6))
    warm, cold = np.arange(300), np.arange(300, c.n)
    m = ContentMap.fit(c, v, warm, seed=0)
    assert m.l2 in (0.1, 1.0, 10.0) and set(m.holdout_error) == {"0.1", "1.0", "10.0", "100.0", "1000.0"}
    err = np.mean((m.predict(c, cold) - v[cold]) ** 2)
    base = np.mean((v[cold] - v[warm].mean(0)) ** 2)
    assert err < 0.15 * base, (err, base)
    arrays, meta = m.to_state()
    back = ContentMap.from_state(arrays, meta)
    np.testing.assert_array_equal(back.predict(c, cold), m.predict(c, cold))


def test_a_given_l2_is_used() -> None:
    c, _ = features(60)
    m = ContentMap.fit(c, np.ones((60, 3)), np.arange(50), l2=7.0)
    assert m.l2 == 7.0 and not m.holdout_error


@pytest.mark.parametrize("bad", [-1.0])
def test_config_rejects_negative_l2(bad: float) -> None:
    from fusionrec.models.fusion import ContentMapConfig

    with pytest.raises(ValueError, match="content_map.l2"):
        ContentMapConfig(l2=bad)
