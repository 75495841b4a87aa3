"""Paired bootstrap: covers a known shift, centres on 0 for identical inputs, refuses unpaired inputs."""

from __future__ import annotations

import numpy as np
import pytest

from fusionrec.errors import ConfigError, DataError
from fusionrec.evaluation.significance import paired_bootstrap


def test_interval_covers_a_known_shift() -> None:
    rng = np.random.default_rng(1)
    a = rng.random(2000)  # per-user metric of A
    b = a + 0.02 + rng.normal(0, 0.1, size=a.size)  # B: A shifted by 0.02, plus per-user noise
    res = paired_bootstrap(a, b, n_boot=5000, seed=0)
    assert res.low < 0.02 < res.high and res.low > 0  # covers the truth, and excludes 0
    assert res.mean_diff == pytest.approx(float((b - a).mean())) and res.share_below_zero < 0.001
    assert res.n_users == 2000 and res.mean_a == pytest.approx(a.mean()) and res.mean_b == pytest.approx(b.mean())
    # the interval's width is what the standard error says: 2 * 1.96 * sd / sqrt(n)
    se = (b - a).std(ddof=1) / np.sqrt(a.size)
    assert res.high - res.low == pytest.approx(2 * 1.96 * se, rel=0.1)


def test_coverage_over_many_draws_is_near_the_nominal_level() -> None:
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(100):
        a = rng.binomial(1, 0.3, size=300).astype(float)  # HR-like 0/1 values
        b = np.where(rng.random(300) < 0.1, 1.0, a)  # B is A with 10% extra hits: true shift 0.1 * 0.7
        res = paired_bootstrap(a, b, n_boot=1000, seed=int(rng.integers(1 << 30)))
        hits += res.low <= 0.07 <= res.high
    assert hits >= 88  # 95% nominal; 100 draws


def test_identical_inputs_give_an_interval_centred_on_zero() -> None:
    a = np.random.default_rng(0).random(500)
    res = paired_bootstrap(a, a.copy(), n_boot=1000)
    assert res.mean_diff == 0 and res.low == 0 and res.high == 0 and res.share_below_zero == 0
    noisy = paired_bootstrap(a, a[np.random.default_rng(1).permutation(500)], n_boot=2000, seed=3)
    assert noisy.low < 0 < noisy.high and abs(noisy.low + noisy.high) < 0.3 * (noisy.high - noisy.low)


def test_same_seed_same_interval_and_blocks_do_not_change_it(monkeypatch) -> None:
    import fusionrec.evaluation.significance as S

    rng = np.random.default_rng(0)
    a, b = rng.random(400), rng.random(400)
    one = paired_bootstrap(a, b, n_boot=3000, seed=5)
    assert paired_bootstrap(a, b, n_boot=3000, seed=5) == one
    assert paired_bootstrap(a, b, n_boot=3000, seed=6) != one
    monkeypatch.setattr(S, "_BLOCK_ELEMENTS", 400 * 7)  # resamples drawn in blocks of 7
    small = paired_bootstrap(a, b, n_boot=3000, seed=5)
    assert small.low == pytest.approx(one.low, abs=0.02) and small.high == pytest.approx(one.high, abs=0.02)


def test_pairs_by_user_id_whatever_the_order() -> None:
    a = np.array([0.1, 0.2, 0.3])
    res = paired_bootstrap(a, a[::-1] + 1.0, users_a=["u1", "u2", "u3"], users_b=["u3", "u2", "u1"], n_boot=200)
    assert res.mean_diff == pytest.approx(1.0) and res.low == pytest.approx(1.0) and res.high == pytest.approx(1.0)


@pytest.mark.parametrize("kwargs, match", [
    ({"a": [0.1, 0.2], "b": [0.1]}, "A has 2 users, B has 1"),
    ({"a": [0.1, 0.2], "b": [0.1, 0.3], "users_a": ["u1", "u2"], "users_b": ["u1", "u9"]}, "1 user.* only in A"),
    ({"a": [0.1, 0.2], "b": [0.1, 0.3], "users_a": ["u1", "u1"], "users_b": ["u1", "u2"]}, "more than once"),
    ({"a": [0.1, 0.2], "b": [0.1, 0.3], "users_a": ["u1", "u2"]}, "both sides"),
    ({"a": [], "b": []}, "no users"),
    ({"a": [0.1, float("nan")], "b": [0.1, 0.2]}, "non-finite"),
])
def test_unpaired_inputs_are_refused_with_a_clear_error(kwargs, match) -> None:
    with pytest.raises(DataError, match=match):
        paired_bootstrap(**kwargs)


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="n_boot"):
        paired_bootstrap([0.1], [0.2], n_boot=0)
    with pytest.raises(ConfigError, match="confidence"):
        paired_bootstrap([0.1], [0.2], confidence=95)
