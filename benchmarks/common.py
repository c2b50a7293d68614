"""What every benchmark shares: reading the data sets, timing, and writing the markdown report."""

from __future__ import annotations

import os
import platform
import subprocess
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


def timed_cli(arguments: list[str]) -> tuple[float, float]:
    """Run ``deepsad ARGUMENTS`` in a new process: its wall seconds, and its peak RSS in MB (``VmHWM``,
    which belongs to this process image; ``ru_maxrss`` would carry the parent's peak over the exec)."""
    runner = (
        "import sys; from deepsad_core.cli import main; code = main(sys.argv[1:]); "
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0], file=sys.stderr); "
        "sys.exit(code)"
    )
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", runner, *arguments], check=True, capture_output=True, text=True)
    return time.perf_counter() - start, int(done.stderr.strip().splitlines()[-1]) / 1024


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


def loop_arguments(parser, budget: int = 50) -> None:
    """The options of a benchmark that runs the labeling loop on every ODDS table."""
    parser.add_argument("--odds-dir", type=Path, required=True)
    parser.add_argument("--seeds", type=int_list, default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=budget)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)


def _default_loop(
    name: str, path: str, seed: int, budget: int, batch_size: int, mix: dict | None, label_noise: float
) -> pd.DataFrame:
    torch.set_num_threads(1)  # one process per core
    from deepsad_core.loop.settings import RoundConfig
    from deepsad_core.loop.simulate import load_simulation_data, simulate

    setup = load_simulation_data(path, seed)
    config = RoundConfig() if mix is None else RoundConfig(mix=mix)
    curves = simulate(
        setup, ["hybrid"], budget=budget, batch_size=batch_size, config=config, seed=seed, label_noise=label_noise
    )
    print(f"{name} seed {seed} done", flush=True)
    return curves.assign(data=name)


def curves_on_every_table(
    names: tuple[str, ...], args, mix: dict | None = None, label_noise: float = 0.0
) -> pd.DataFrame:
    """The app's labeling loop (its default queue, or ``mix``) with the simulated expert, on every table
    and seed, one process per core; the curves together."""
    from concurrent.futures import ProcessPoolExecutor

    jobs = [(name, str(args.odds_dir / f"{name}.npz"), seed) for name in names for seed in args.seeds]
    with ProcessPoolExecutor(args.workers) as pool:
        futures = [
            pool.submit(_default_loop, n, p, s, args.budget, args.batch_size, mix, label_noise) for n, p, s in jobs
        ]
        return pd.concat([f.result() for f in futures], ignore_index=True)


def save_curves(curves: pd.DataFrame, folder: str) -> None:
    """One CSV per data set in ``benchmarks/results/<folder>/``."""
    out = RESULTS_DIR / folder
    out.mkdir(parents=True, exist_ok=True)
    for name, part in curves.groupby("data"):
        part.to_csv(out / f"{name}.csv", index=False)
