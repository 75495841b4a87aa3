"""Side events as history: any model trained and scored on its interactions plus the side events' pairs.

A fair baseline for a model that reads a second behaviour (``fusion`` reads lastfm-2k's tagging):
``WithSideEvents(EASE())`` fits EASE on the interactions ∪ the (user, item) pairs of the training
view's side events, and scores a user from their history ∪ their side events. The targets stay the
interactions: what the user already *interacted with* is excluded from their list, what they only
tagged is not (21% of lastfm-2k's held-out artists were tagged by their user before).

``--set ease.side_events=true`` (or any model's) switches it on.

Examples
--------
>>> from fusionrec.jobs import build_model
>>> type(build_model("ease", {"side_events": True})).__name__
'WithSideEvents'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from fusionrec.data.schema import Dataset
from fusionrec.models.history import History
from fusionrec.models.wrapper import Wrapper


@dataclass(frozen=True)
class SideEventsConfig:
    kinds: str = ""  # comma-separated side-event kinds to read; "" = every kind


class WithSideEvents(Wrapper):
    wrapper_name = "side_events"
    WrapperConfig = SideEventsConfig

    def _side_matrix(self, train: Dataset) -> sp.csr_matrix:
        kinds = [k.strip() for k in self.wrapper_config.kinds.split(",") if k.strip()]
        m = sp.csr_matrix((train.n_users, train.n_items), dtype=np.float32)
        for kind in kinds or [None]:
            m = m + train.side_matrix(kind)
        m = sp.csr_matrix(m, dtype=np.float32)
        m.data[:] = 1.0
        return m

    def fit(self, train: Dataset, valid: Dataset | None = None) -> WithSideEvents:  # type: ignore[override]
        side = self._side_matrix(train)
        listens = train.csr("binary")
        extra = sp.csr_matrix(side - side.multiply(listens))  # pairs the interactions do not have
        extra.eliminate_zeros()
        coo = extra.tocoo()
        added = pd.DataFrame({"user": coo.row.astype(np.int64), "item": coo.col.astype(np.int64),
                              "timestamp": np.zeros(coo.nnz, np.int64)})
        for col in train.interactions.columns:
            if col not in added:  # ratings / weights of an added pair: the column's median
                added[col] = train.interactions[col].median() if len(train.interactions) else 0
        union = train.with_interactions(pd.concat([train.interactions, added[train.interactions.columns]],
                                                  ignore_index=True), name=f"{train.name}+side")
        self.inner.fit(union, valid)
        self.side_ = side
        self.train_matrix_ = listens  # what is excluded from lists: the interactions alone
        self.item_popularity_ = np.asarray(listens.sum(axis=0)).ravel().astype(np.float32)
        self.added_pairs_ = int(coo.nnz)
        return self

    def _fit_wrapper(self, train: Dataset, valid: Dataset | None) -> None:  # fit() is replaced above
        raise NotImplementedError

    def user_history(self, users: np.ndarray, extra: sp.csr_matrix | None = None) -> History:
        """The users' interactions (training, then ``extra``): side events are no history to exclude."""
        m = self.train_matrix_
        return History.build(np.asarray(users, dtype=np.int64), m.indptr, m.indices, m.shape[0], self.n_items_, extra)

    def score(self, users: np.ndarray, history: Any = None, *, out: np.ndarray | None = None) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        hist = self.user_history(users) if history is None else history
        binary = hist.binary if isinstance(hist, History) else sp.csr_matrix(hist)
        from fusionrec.models.base import take_rows

        side = take_rows(self.side_, users)[:, : binary.shape[1]]
        union = sp.csr_matrix(binary + side)
        union.data[:] = 1.0
        return self.inner.score(users, union, out=out)

    def _adjust(self, scores: np.ndarray, users: np.ndarray, history: History) -> None:  # score() is replaced
        raise NotImplementedError

    def _wrapper_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        s, t = self.side_, self.train_matrix_
        return ({"side.indptr": s.indptr.astype(np.int64), "side.indices": s.indices.astype(np.int64),
                 "side.shape": np.asarray(s.shape, np.int64), "train.indptr": t.indptr.astype(np.int64),
                 "train.indices": t.indices.astype(np.int64)}, {"added_pairs": self.added_pairs_})

    def _load_wrapper_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        shape = tuple(int(x) for x in arrays["side.shape"])
        self.side_ = sp.csr_matrix((np.ones(len(arrays["side.indices"]), np.float32), arrays["side.indices"],
                                    arrays["side.indptr"]), shape=shape)
        n_items = self.inner.n_items_
        self.train_matrix_ = sp.csr_matrix((np.ones(len(arrays["train.indices"]), np.float32),
                                            arrays["train.indices"], arrays["train.indptr"]),
                                           shape=(len(arrays["train.indptr"]) - 1, n_items))
        self.item_popularity_ = np.asarray(self.train_matrix_.sum(axis=0)).ravel().astype(np.float32)
        self.added_pairs_ = int(meta.get("added_pairs", 0))
