"""The user's profile (categorical and numeric fields) as a token in front of the history.

A new user with a profile but no history still gets a user vector from it; a user past the profile
table (added with events only) gets the mean profile token.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fusionrec.models.fusion.sources.attributes import AttributeTokens
from fusionrec.models.fusion.sources.base import UserSource


class ProfileSource(UserSource):
    """Examples
    --------
    >>> import pandas as pd
    >>> from fusionrec.data.schema import Dataset
    >>> from fusionrec.encoders import user_content
    >>> ds = Dataset.from_frames(pd.DataFrame({"user": ["a", "b"], "item": ["x", "y"]}),
    ...                          users=pd.DataFrame({"user": ["a", "b"], "age": [20.0, 60.0]}))
    >>> s = ProfileSource(user_content(ds), hidden=8)
    >>> tuple(s(np.array([0, 1, 5]), torch.zeros(2, 8)).shape)  # user 5: past the table
    (3, 8)
    """

    name = "profile"

    def __init__(self, content: Any, hidden: int) -> None:
        super().__init__()
        self.tokens = AttributeTokens(content, hidden)
        self.n_users = int(content.n)

    @property
    def empty(self) -> bool:
        return bool(self.tokens.empty)

    def forward(self, users: np.ndarray, vectors: torch.Tensor) -> torch.Tensor:
        """(B,) dense users -> (B, H) profile tokens."""
        u = torch.from_numpy(np.asarray(users, dtype=np.int64))
        known = u < self.n_users
        tok, _ = self.tokens(u.clamp(max=self.n_users - 1))
        if bool(known.all()):
            return tok
        mean = self.tokens(torch.arange(self.n_users))[0].mean(0)
        return torch.where(known[:, None], tok, mean)
