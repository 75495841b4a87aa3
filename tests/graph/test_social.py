"""The social graph: friend matrix construction and friend evidence (exact counts, ranking)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from fusionrec.data.schema import Dataset
from fusionrec.errors import ConfigError, DataError
from fusionrec.graph.social import edges_to_matrix, friend_matrix, friends_evidence, normalize_rows


def world(social: pd.DataFrame | None) -> Dataset:
    df = pd.DataFrame({"user": ["u0", "u1", "u2", "u3"], "item": ["a", "b", "a", "c"]})
    return Dataset.from_frames(df, social=social)


def idx(data: Dataset, *raw: str) -> list[int]:
    return data.user_ids.index(list(raw), what="user", source="test").tolist()


def test_friend_matrix_is_symmetric_without_self_loops_and_keeps_the_larger_weight() -> None:
    social = pd.DataFrame({"user": ["u0", "u1", "u0", "u2", "u3", "u4"],
                           "friend": ["u1", "u0", "u2", "u2", "u0", "u0"],
                           "weight": [1.0, 3.0, 2.0, 5.0, 0.5, 1.0]})
    data = world(social)  # u4 has friends but no interactions: still a user
    assert data.n_users == 5
    f = friend_matrix(data)
    u0, u1, u2, u3, u4 = idx(data, "u0", "u1", "u2", "u3", "u4")
    a = f.toarray()
    assert a.shape == (5, 5) and (a == a.T).all() and np.diag(a).sum() == 0
    assert set(np.flatnonzero(a[u0]).tolist()) == {u1, u2, u3, u4}
    assert a[u2].sum() == 1  # the self-loop u2-u2 is dropped; only u0 remains
    assert f.dtype == np.float32 and np.all(f.data == 1.0)  # unweighted by default
    w = friend_matrix(data, weighted=True).toarray()
    assert w[u0, u1] == w[u1, u0] == 3.0  # listed both ways: the larger weight, not the sum
    assert w[u0, u2] == 2.0 and w[u3, u0] == 0.5


def test_friend_matrix_needs_a_social_table() -> None:
    with pytest.raises(DataError, match="no social table"):
        friend_matrix(world(None))


def test_edges_outside_the_user_range_are_rejected() -> None:
    with pytest.raises(DataError, match="outside 0..2"):
        edges_to_matrix(np.array([0]), np.array([3]), None, 3)
    with pytest.raises(DataError, match="weights"):
        edges_to_matrix(np.array([0]), np.array([1]), np.array([-1.0]), 3)


def test_normalize_rows_gives_the_mean_over_friends() -> None:
    m = normalize_rows(sp.csr_matrix(np.array([[0, 1, 1, 2], [0, 0, 0, 0]], dtype=np.float32)))
    np.testing.assert_allclose(m.toarray(), [[0, 0.25, 0.25, 0.5], [0, 0, 0, 0]])


def test_friends_evidence_counts_are_exact_and_ranked_by_contribution() -> None:
    # user 0's friends: 1, 2, 3, 4 (user 5 is not a friend); items 0..4
    friends = edges_to_matrix(np.array([0, 0, 0, 0, 5]), np.array([1, 2, 3, 4, 1]), None, 6)
    x = np.zeros((6, 5), dtype=np.float32)
    x[1, [0, 1]] = [1, 5]
    x[2, [0, 1, 2]] = [1, 1, 1]
    x[3, [0]] = [1]
    x[4, [2]] = [4]
    x[5, [3, 0]] = [9, 9]  # not user 0's friend: never counted
    ev = friends_evidence(friends, sp.csr_matrix(x), 0, [3, 2, 1, 0, 4])
    # contributions: item 1 = 5 + 1 = 6, item 2 = 1 + 4 = 5, item 0 = 3; items 3, 4 have no evidence
    assert [e.item for e in ev] == [1, 2, 0]
    assert [e.count for e in ev] == [2, 2, 3]
    assert [e.friends.tolist() for e in ev] == [[1, 2], [4, 2], [1, 2, 3]]  # strongest first, ties by index
    assert ev[0].contribution == 6.0 and ev[2].contributions.tolist() == [1.0, 1.0, 1.0]
    assert ev[2].message("Radiohead") == "3 of your friends listen to Radiohead"
    assert ev[0].message() == "2 of your friends listen to item 1"


def test_friends_evidence_ties_keep_the_order_of_items() -> None:
    friends = edges_to_matrix(np.array([0, 0]), np.array([1, 2]), None, 3)
    x = sp.csr_matrix(np.array([[0, 0, 0], [1, 1, 0], [0, 0, 1]], dtype=np.float32))
    assert [e.item for e in friends_evidence(friends, x, 0, [2, 1, 0])] == [2, 1, 0]
    assert friends_evidence(friends, x, 0, [2])[0].message() == "1 of your friends listens to item 2"


def test_friends_evidence_without_friends_or_for_unknown_users_is_empty() -> None:
    friends = edges_to_matrix(np.array([0]), np.array([1]), None, 3)
    x = sp.csr_matrix(np.ones((3, 2), dtype=np.float32))
    assert friends_evidence(friends, x, 2, [0, 1]) == []  # user 2 has no friends
    assert friends_evidence(friends, x, 7, [0, 1]) == []  # outside the graph (a new user)
    with pytest.raises(ConfigError, match="item indices in 0..1"):
        friends_evidence(friends, x, 0, [2])
