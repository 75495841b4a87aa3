"""GRU4Rec: learns an order; padding never changes a real position's state."""

from __future__ import annotations

import numpy as np
import torch

from fusionrec.models.gru4rec import GRU4Rec, GRU4RecConfig, GRU4RecNet
from tests.models.sequence_data import last_items, successor_data


def test_learns_that_item_i_is_followed_by_item_i_plus_1() -> None:
    # seeds 0-9 at 1 thread and 0-4 at 2 threads: top-1 accuracy 1.00 every time; bar 0.9
    data = successor_data()
    model = GRU4Rec(GRU4RecConfig(hidden=16, max_len=8, dropout=0.0, targets=1, epochs=20, batch_size=16, lr=0.02,
                                  warmup_steps=0, threads=1)).fit(data)
    items, _ = model.recommend(np.arange(data.n_users), k=1)
    assert np.mean(items[:, 0] == (last_items(data) + 1) % data.n_items) > 0.9


def test_states_of_real_items_do_not_depend_on_trailing_padding_or_later_items() -> None:
    torch.manual_seed(0)
    net = GRU4RecNet(20, GRU4RecConfig(hidden=8)).eval()
    seq = torch.tensor([[3, 7, 2, 0, 0, 0]])  # right-padded
    with torch.no_grad():
        a = net(seq)
        b = net(torch.tensor([[3, 7, 2]]))
        c = net(torch.tensor([[3, 7, 2, 9, 9, 9]]))
    torch.testing.assert_close(a[:, :3], b)
    torch.testing.assert_close(a[:, :3], c[:, :3])
