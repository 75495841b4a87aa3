"""Attributes: codes, vocabularies (and their reuse), multi-valued CSR, standardised numbers."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from fusionrec.encoders.attributes import encode_attributes, piecewise_linear

SCHEMA = {"genre": "categorical", "tags": "multi", "year": "numeric", "price": "numeric", "title": "text"}


def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "genre": ["rock", "jazz", "rock", None, " rock ", ""],
        "tags": ["a|b", "b", "", "c| a |a", None, "b||"],
        "year": [1990.0, 2000.0, np.nan, 2010.0, 2000.0, 2000.0],
        "price": ["1.5", "2.5", "cheap", None, "2", "2"],
        "title": ["x"] * 6,
    })


def test_codes_vocab_and_csr() -> None:
    a = encode_attributes(frame(), SCHEMA)
    assert a.vocab["genre"] == ["rock", "jazz"]  # by frequency
    assert a.categorical["genre"].tolist() == [1, 2, 1, 0, 1, 0]
    assert a.categorical["genre"].dtype == np.int64
    assert a.vocab["tags"] == ["b", "a", "c"]
    indptr, codes = a.multi["tags"]
    assert indptr.tolist() == [0, 2, 3, 3, 5, 5, 6]
    assert codes.tolist() == [2, 1, 1, 3, 2, 1] and (codes >= 1).all()
    assert "title" not in a.vocab and a.counts["genre"] == {"missing": 2, "unknown": 0}


def test_numeric_is_standardised_with_a_missing_mask(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="fusionrec.encoders.attributes"):
        a = encode_attributes(frame(), SCHEMA)
    assert a.numeric_columns == ["year", "price"] and a.numeric.dtype == np.float32
    assert a.numeric_missing[:, 0].tolist() == [False, False, True, False, False, False]
    assert a.numeric_missing[:, 1].tolist() == [False, False, True, True, False, False]
    for j in range(2):
        ok = a.numeric[~a.numeric_missing[:, j], j]
        assert abs(ok.mean()) < 1e-6 and abs(ok.std() - 1) < 1e-5
        assert (a.numeric[a.numeric_missing[:, j], j] == 0).all()
    assert "'cheap'" in caplog.text  # a lenient conversion says so


def test_vocab_and_stats_reuse_for_new_rows() -> None:
    base = encode_attributes(frame(), SCHEMA)
    new = pd.DataFrame({"genre": ["jazz", "polka"], "tags": ["c|zzz", "zzz"], "year": [2000.0, 1990.0],
                        "price": [2.0, None]})
    a = encode_attributes(new, SCHEMA, vocab=base.vocab, numeric_stats=base.numeric_stats)
    assert a.vocab == base.vocab
    assert a.categorical["genre"].tolist() == [2, 0]  # unseen -> 0
    assert a.multi["tags"][0].tolist() == [0, 1, 1] and a.multi["tags"][1].tolist() == [3]
    assert a.counts["genre"]["unknown"] == 1 and a.counts["tags"]["unknown"] == 2
    # the same value gets the same standardised number as in the fitted rows
    assert a.numeric[0, 0] == base.numeric[1, 0]
    assert a.numeric[1, 0] == base.numeric[0, 0]


def test_piecewise_linear_bins_follow_fitted_quantiles() -> None:
    years = pd.DataFrame({"year": np.r_[np.arange(1930, 1990, 3), np.repeat(1997.0, 60), [np.nan]]})
    a = encode_attributes(years, {"year": "numeric"})
    mean, std, *edges = a.numeric_stats["year"]
    assert edges == sorted(edges) and len(set(edges)) == len(edges) >= 2  # repeated quantiles collapse
    ple = piecewise_linear(a.numeric, a.numeric_missing, a.numeric_columns, a.numeric_stats)
    assert ple.shape == (len(years), len(edges) - 1) and ple.dtype == np.float32
    assert ((ple >= 0) & (ple <= 1)).all() and (ple[-1] == 0).all()  # missing -> zeros
    total = ple.sum(1)[:-1]
    assert (np.diff(total[np.argsort(years["year"].to_numpy()[:-1], kind="stable")]) >= 0).all()  # monotone in v
    assert total[0] == 0 and total[-1] == len(edges) - 1  # the minimum fills no bin, the maximum all
    # new rows reuse the edges: an out-of-range year saturates instead of being refitted
    new = encode_attributes(pd.DataFrame({"year": [2050.0, 1931.5]}), {"year": "numeric"}, numeric_stats=a.numeric_stats)
    assert new.numeric_stats == a.numeric_stats
    p2 = piecewise_linear(new.numeric, new.numeric_missing, new.numeric_columns, new.numeric_stats)
    assert p2[0].sum() == len(edges) - 1 and 0 < p2[1].sum() < 1
    # stats saved before edges were kept (mean, std only) give no bins
    assert piecewise_linear(a.numeric, a.numeric_missing, ["year"], {"year": [mean, std]}).shape == (len(years), 0)


def test_no_table_means_all_missing() -> None:
    a = encode_attributes(None, {"g": "categorical", "n": "numeric"}, n=3, vocab={"g": ["x"]})
    assert a.categorical["g"].tolist() == [0, 0, 0] and a.numeric_missing.all() and (a.numeric == 0).all()


def test_integral_floats_and_ints_share_a_code() -> None:
    a = encode_attributes(pd.DataFrame({"zip": [1.0, np.nan, 2.0]}), {"zip": "categorical"})
    b = encode_attributes(pd.DataFrame({"zip": [2, 1]}), {"zip": "categorical"}, vocab=a.vocab)
    assert b.categorical["zip"].tolist() == [a.categorical["zip"][2], a.categorical["zip"][0]]
