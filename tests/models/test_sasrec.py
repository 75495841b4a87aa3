"""SASRec: learns an order, is causal, and its losses train."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from fusionrec.models.sasrec import SASRec, SASRecConfig, SASRecNet
from tests.models.sequence_data import last_items, successor_data

TINY = {"hidden": 16, "inner": 32, "layers": 1, "heads": 2, "max_len": 8, "dropout": 0.1, "attn_dropout": 0.0,
        "targets": 1, "epochs": 20, "batch_size": 16, "lr": 0.01, "warmup_steps": 0, "threads": 1}


@pytest.fixture(scope="module")
def data():
    return successor_data()


@pytest.mark.parametrize("loss", ["ce", "sampled"])
def test_learns_that_item_i_is_followed_by_item_i_plus_1(data, loss: str) -> None:
    model = SASRec(SASRecConfig(**TINY, loss=loss, negatives=8)).fit(data)
    assert model.training_log_[-1]["loss"] < 0.5 * model.training_log_[0]["loss"]
    items, _ = model.recommend(np.arange(data.n_users), k=1)
    expected = (last_items(data) + 1) % data.n_items
    assert np.mean(items[:, 0] == expected) > 0.9


def test_with_three_targets_the_next_three_items_come_first() -> None:
    data = successor_data(n_items=30)  # users see 10 of 30 items: the next three are unseen
    model = SASRec(SASRecConfig(**{**TINY, "targets": 3})).fit(data)
    items, _ = model.recommend(np.arange(data.n_users), k=3)
    nxt = (last_items(data)[:, None] + np.arange(1, 4)) % data.n_items
    assert np.mean(np.sort(items, 1) == np.sort(nxt, 1)) > 0.9


def test_extra_history_is_read_in_its_order(data) -> None:
    model = SASRec(SASRecConfig(**TINY)).fit(data)
    new = data.n_users  # a new user who saw items 3 then 4 (order keys 1, 2): next is 5
    extra = sp.csr_matrix((np.array([1.0, 2.0]), (np.array([new, new]), np.array([3, 4]))),
                          shape=(new + 1, data.n_items))
    items, _ = model.recommend([new], k=1, extra_history=extra, exclude_seen=False)
    assert items[0, 0] == 5
    swapped = extra.copy()
    swapped.data = np.array([2.0, 1.0])  # 4 then 3: next is 4
    items, _ = model.recommend([new], k=1, extra_history=swapped, exclude_seen=False)
    assert items[0, 0] == 4


@pytest.mark.parametrize("positions", ["start", "end"])
def test_changing_a_later_item_leaves_earlier_states_unchanged(positions: str) -> None:
    torch.manual_seed(0)
    net = SASRecNet(20, SASRecConfig(hidden=16, heads=2, max_len=10, positions=positions)).eval()
    seq = torch.tensor([[3, 7, 2, 9, 4, 11, 5, 8, 0, 0]] if positions == "start" else [[0, 0, 3, 7, 2, 9, 4, 11, 5, 8]])
    cut = 4 if positions == "start" else 6  # positions before `cut` hold items 3, 7, 2, 9 (and padding)
    later = seq.clone()
    later[0, cut:cut + 4] = torch.tensor([1, 1, 1, 1])
    with torch.no_grad():
        a, b = net(seq), net(later)
    torch.testing.assert_close(a[:, :cut], b[:, :cut])
    assert not torch.allclose(a[:, cut:cut + 4], b[:, cut:cut + 4])


def test_a_trimmed_batch_gives_the_same_states_as_a_full_width_one() -> None:
    # training cuts a batch to its longest window; the states of real items must not depend on the
    # padding: trailing padding for positions="start", leading padding for positions="end"
    torch.manual_seed(0)
    short = torch.tensor([[3, 7, 2, 0], [5, 6, 1, 4]])
    net = SASRecNet(20, SASRecConfig(hidden=16, heads=2, max_len=10, positions="start")).eval()
    with torch.no_grad():
        wide = net(torch.cat([short, torch.zeros(2, 6, dtype=torch.long)], dim=1))[:, :4]
        torch.testing.assert_close(wide[short > 0], net(short)[short > 0])
    short = torch.tensor([[0, 3, 7, 2], [5, 6, 1, 4]])
    net = SASRecNet(20, SASRecConfig(hidden=16, heads=2, max_len=10, positions="end")).eval()
    with torch.no_grad():
        wide = net(torch.cat([torch.zeros(2, 6, dtype=torch.long), short], dim=1))[:, 6:]
        torch.testing.assert_close(wide[short > 0], net(short)[short > 0])


def test_both_position_schemes_learn_the_order(data) -> None:
    model = SASRec(SASRecConfig(**TINY, positions="end")).fit(data)
    items, _ = model.recommend(np.arange(data.n_users), k=1)
    assert np.mean(items[:, 0] == (last_items(data) + 1) % data.n_items) > 0.9


def test_dropout_and_heads_are_validated() -> None:
    with pytest.raises(ValueError, match="divisible"):
        SASRecConfig(hidden=10, heads=3)
    with pytest.raises(ValueError, match="attn_dropout"):
        SASRecConfig(attn_dropout=1.0)
    with pytest.raises(ValueError, match="loss"):
        SASRecConfig(loss="bpr")
