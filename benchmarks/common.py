"""What every benchmark shares: reading the data sets, timing, and writing the markdown report."""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch

RESULTS_DIR = Path(__file__).parent / "results"


def load_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``X`` and ``y`` from one of the shared ``.npz`` files (no pickles)."""
    if not path.exists():
        raise SystemExit(f"{path} not found: pass --data-dir pointing at the shared benchmark data")
    with np.load(path, allow_pickle=False) as f:
        return f["X"], f["y"]


def int_list(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """``with stopwatch() as t: ...`` then ``t[0]`` holds the elapsed seconds."""
    out: list[float] = []
    start = time.perf_counter()
    yield out
    out.append(time.perf_counter() - start)


def machine_line() -> str:
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    return (
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, {device}; "
        f"torch {torch.__version__}, Python {platform.python_version()}"
    )


def command_line(module: str, argv: list[str] | None) -> str:
    """The command that ran benchmark ``module``, for its report: ``python -m benchmarks.<module> ...``."""
    return f"python -m benchmarks.{module} " + " ".join(argv if argv is not None else sys.argv[1:])


def write_report(name: str, title: str, command: str, notes: list[str], table: pd.DataFrame) -> Path:
    """Print the markdown report and write it to ``benchmarks/results/<name>.md``."""
    lines = [f"## {title}", "", f"Command: `{command}`", "", f"Machine: {machine_line()}", ""]
    lines += [f"- {n}" for n in notes]
    lines += ["", table.to_markdown(index=False), ""]
    text = "\n".join(lines)
    print(text)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.md"
    path.write_text(text)
    return path
