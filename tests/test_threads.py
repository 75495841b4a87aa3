"""torch_threads: the thread count is set inside the block and restored after it, errors included."""

from __future__ import annotations

import pytest
import torch

from fusionrec.threads import torch_threads


def test_threads_are_set_inside_and_restored_after_even_on_error() -> None:
    before = torch.get_num_threads()
    want = 1 if before != 1 else 2
    with torch_threads(want):
        assert torch.get_num_threads() == want
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(want):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before
    with torch_threads(0):  # 0 = leave as is
        assert torch.get_num_threads() == before
