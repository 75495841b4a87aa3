"""NCF (NeuMF): exact catalogue scoring, fold-in of changed histories, negatives."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from fusionrec.models.ncf import NCF, NCFConfig
from tests.conftest import tiny_interactions

TINY = {"factors": 8, "mlp_layers": 2, "epochs": 5, "batch_size": 64, "lr": 0.01, "warmup_steps": 0, "threads": 1}


@pytest.fixture(scope="module")
def model():
    from fusionrec.data import Dataset

    return NCF(NCFConfig(**TINY)).fit(Dataset.from_frames(tiny_interactions(), name="tiny"))


def test_catalogue_scores_equal_pairwise_scores(model: NCF) -> None:
    net = model.network_
    users = torch.arange(4)
    with torch.no_grad():
        full = net.all_items(net.user_gmf(users), net.user_mlp(users))  # (4, n_items), decomposed first layer
        pairs = net(users.repeat_interleave(model.n_items_), torch.arange(model.n_items_).repeat(4))
    torch.testing.assert_close(full, pairs.view(4, -1))


def test_mlp_tower_halves_down_to_the_predictive_factors() -> None:
    from fusionrec.models.ncf import NeuMFNet

    net = NeuMFNet(3, 5, NCFConfig(factors=8, mlp_layers=3))
    assert [(layer.in_features, layer.out_features) for layer in net.tower] == [(64, 32), (32, 16), (16, 8)]
    assert net.user_mlp.embedding_dim == 32 and net.user_gmf.embedding_dim == 8


def test_unchanged_history_uses_learned_vectors_and_changed_history_is_folded_in(model: NCF) -> None:
    users = np.array([0, 1, 2])
    g, m = model._user_vectors(users, model.history_for(users))
    torch.testing.assert_close(g, model.network_.user_gmf.weight[:3])
    added = sp.csr_matrix((np.ones(1, np.float32), ([1], [int(np.argmin(model.history_for(users)[1].toarray()))])),
                          shape=(3, model.n_items_))
    g2, _ = model._user_vectors(users, model.history_for(users, added))
    torch.testing.assert_close(g2[[0, 2]], g[[0, 2]])
    assert not torch.allclose(g2[1], g[1])


def test_fold_in_does_not_depend_on_the_other_users_in_the_call(model: NCF) -> None:
    new = model.n_users_ + 1
    hist = sp.csr_matrix((np.ones(3, np.float32), ([0, 0, 1], [2, 3, 5])), shape=(2, model.n_items_))
    alone = model.score(np.array([new]), hist[:1])
    together = model.score(np.array([new, new + 1]), hist)
    np.testing.assert_allclose(alone[0], together[0], rtol=1e-5, atol=1e-5)


def test_negatives_are_never_training_items(model: NCF) -> None:
    users = np.repeat(np.arange(model.n_users_), 50)
    items = model._negatives(users, np.random.default_rng(0))
    x = model.train_matrix_.toarray()
    assert x[users, items].sum() == 0


def test_a_new_user_starts_from_the_users_who_had_their_items(model: NCF) -> None:
    x = model.train_matrix_.toarray()
    item = int(np.argmax(x.sum(0)))
    hist = sp.csr_matrix((np.ones(1, np.float32), ([0], [item])), shape=(1, model.n_items_))
    g, m = model._neighbour_start(hist)
    owners = np.flatnonzero(x[:, item])
    torch.testing.assert_close(g[0], model.network_.user_gmf.weight[owners].mean(0).detach())
