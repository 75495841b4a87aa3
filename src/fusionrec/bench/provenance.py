"""Where a benchmark row came from: the code (commit, dirty), the command, the machine.

Every result row records these (see :func:`fusionrec.bench.measurement.measure`), so a figure in
BENCHMARKS.md can be traced to the code and command that made it, and re-made.

Examples
--------
>>> {"cpu", "logical_cores", "torch_threads", "python", "torch", "numpy", "os"} <= set(machine())
True
>>> shell_command(["fusionrec", "bench", "cv", "--set", "mf.lr=0.1 x"])
"fusionrec bench cv --set 'mf.lr=0.1 x'"
"""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

#: paths whose changes do not make a measurement "dirty": what benchmarking itself writes (the
#: results files gain a line after every row, and ``bench report`` rewrites BENCHMARKS.md)
BENCH_OUTPUTS = ("benchmarks/results", "BENCHMARKS.md")


def source_dir() -> Path:
    """The folder of the fusionrec package this process imported (its git repo is the one measured)."""
    import fusionrec

    return Path(fusionrec.__file__).resolve().parent


def _git(repo: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False,
                              timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def repo_root(path: str | Path | None = None) -> Path | None:
    """The top of the git work tree holding ``path`` (default: the fusionrec sources), or None."""
    top = _git(Path(path) if path is not None else source_dir(), "rev-parse", "--show-toplevel")
    return Path(top.strip()) if top else None


def git_state(path: str | Path | None = None) -> dict[str, Any]:
    """``{"commit": HEAD sha or None, "dirty": bool or None}`` of the repo holding ``path``.

    ``dirty`` is whether a tracked file differs from HEAD (staged or not), leaving out
    :data:`BENCH_OUTPUTS`; untracked files do not count. Outside git both are None.
    """
    root = repo_root(path)
    if root is None:
        return {"commit": None, "dirty": None}
    head = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain", "--untracked-files=no", "--", ".",
                  *(f":(exclude){p}" for p in BENCH_OUTPUTS))
    return {"commit": head.strip() if head else None, "dirty": None if status is None else bool(status.strip())}


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (else what :mod:`platform` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """The machine and software a measurement ran on."""
    import numpy as np
    import torch

    return {"cpu": cpu_model(), "logical_cores": os.cpu_count(), "memory_gb": _memory_gb(),
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__, "numpy": np.__version__, "scipy": _version("scipy"),
            "implicit": _version("implicit"), "os": platform.platform(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def shell_command(argv: Sequence[object], *, cwd: str | Path | None = None, root: str | Path | None = None) -> str:
    """``argv`` as one shell-quoted line, runnable from the repo ``root``.

    Relative :class:`~pathlib.Path` arguments are taken relative to ``cwd`` (default: the current
    directory) and rewritten relative to ``root`` (default: the repo of the fusionrec sources), so
    the line runs from the repo root wherever it was typed.
    """
    here = Path(cwd) if cwd is not None else Path.cwd()
    top = Path(root) if root is not None else repo_root()
    words = []
    for a in argv:
        if isinstance(a, Path) and not a.is_absolute() and top is not None:
            a = Path(os.path.relpath(here.resolve() / a, top.resolve()))
        words.append(str(a))
    return shlex.join(words)
