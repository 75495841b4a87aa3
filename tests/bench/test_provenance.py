"""Provenance: the commit and dirty state of a repo, the machine, the command as a shell line."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fusionrec.bench.provenance import git_state, machine, shell_command


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "repo"
    r.mkdir()
    _git(r, "init", "-q")
    _git(r, "config", "user.email", "t@example.org")
    _git(r, "config", "user.name", "t")
    (r / "code.py").write_text("x = 1\n")
    (r / "benchmarks" / "results").mkdir(parents=True)
    (r / "benchmarks" / "results" / "a.jsonl").write_text("{}\n")
    (r / "BENCHMARKS.md").write_text("# b\n")
    _git(r, "add", ".")
    _git(r, "commit", "-q", "-m", "first")
    return r


def test_commit_and_clean_tree(repo: Path) -> None:
    state = git_state(repo)
    assert state == {"commit": _git(repo, "rev-parse", "HEAD").strip(), "dirty": False}
    assert git_state(repo / "benchmarks")["commit"] == state["commit"]  # any path inside the repo


def test_a_changed_tracked_file_is_dirty_an_untracked_one_is_not(repo: Path) -> None:
    (repo / "new.py").write_text("untracked\n")
    assert git_state(repo)["dirty"] is False
    (repo / "code.py").write_text("x = 2\n")
    assert git_state(repo)["dirty"] is True
    _git(repo, "add", "code.py")  # staged but not committed: still dirty
    assert git_state(repo)["dirty"] is True


def test_what_benchmarking_writes_does_not_make_the_tree_dirty(repo: Path) -> None:
    with open(repo / "benchmarks" / "results" / "a.jsonl", "a") as fh:
        fh.write('{"row": 2}\n')
    (repo / "BENCHMARKS.md").write_text("# regenerated\n")
    assert git_state(repo)["dirty"] is False


def test_outside_git_commit_and_dirty_are_null(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    assert git_state(tmp_path / "plain") == {"commit": None, "dirty": None}


def test_machine_names_cpu_cores_threads_and_versions() -> None:
    import numpy as np
    import torch

    m = machine()
    assert m["cpu"] and m["logical_cores"] >= 1 and m["torch_threads"] == torch.get_num_threads()
    assert m["torch"] == torch.__version__ and m["numpy"] == np.__version__ and m["python"] and m["os"]


def test_shell_command_quotes_and_rebases_relative_paths(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "sub").mkdir(parents=True)
    cmd = shell_command(["fusionrec", "bench", "cv", "--set", "a=b c", "--out", Path("x.jsonl"),
                         "--data-dir", Path("/abs/data")], cwd=root / "sub", root=root)
    assert cmd == "fusionrec bench cv --set 'a=b c' --out sub/x.jsonl --data-dir /abs/data"
