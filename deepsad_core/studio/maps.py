"""The map service: UMAP maps drawn in one low-priority child process, one job at a time.

numba's compiled loops hold the GIL, so a map drawn in a thread of the app's own process stalls
every page rerun for its whole duration. The service keeps one spawned child (forking a process
with torch threads is unsafe) at the lowest priority, which on Linux also dies with its parent.
Jobs queue in a daemon thread and run in the order given; a job past its timeout is stopped with
the process, and the next job starts a fresh one. The child is a daemonic process, so an exiting
app ends it instead of waiting for its current job.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from deepsad_core.exceptions import MapProcessError
from deepsad_core.loop.projection import LatentMap, MapConfig, umap_map, warm_up

__all__ = [
    "MAP_PROCESS_NICENESS",
    "MAP_TIMEOUT_S",
    "MapProcessError",
    "MapService",
    "default_service",
    "start_map_process",
]

MAP_PROCESS_NICENESS = 19  # the lowest priority: the app and the browser come first on a small machine
MAP_TIMEOUT_S = 600.0  # a map job past this is stopped: far beyond a 10,000-point map's seconds
NUMBA_CACHE = Path.home() / ".cache" / "deepsad-studio" / "numba"  # compiled UMAP code kept between runs
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _serve(jobs) -> None:
    """The child: low priority, a SIGTERM when its parent dies (Linux), then jobs until the pipe closes."""
    os.nice(MAP_PROCESS_NICENESS)
    os.environ.setdefault("NUMBA_CACHE_DIR", str(NUMBA_CACHE))
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() == 1:  # the parent died before the request took effect
            os._exit(1)
    while True:
        try:
            fn, args = jobs.recv()
        except EOFError:
            return
        try:
            jobs.send((True, fn(*args)))
        except Exception as e:  # the caller gets the job's own exception
            jobs.send((False, e))


class MapService:
    """One child process that runs map jobs in order; share one per app server.

    Parameters
    ----------
    timeout : float, default 600
        Seconds a job may run before it is stopped, with its process.
    """

    def __init__(self, timeout: float = MAP_TIMEOUT_S) -> None:
        self.timeout = timeout
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._process: multiprocessing.Process | None = None
        self._pipe = None
        self._lock = threading.Lock()
        self._runner: threading.Thread | None = None
        self._closed = False
        # at exit, end the child before multiprocessing would, and start no new one: a queued map
        # must not spawn a process while the interpreter shuts down
        atexit.register(self.close)

    def submit(self, fn: Callable, *args: Any, timeout: float | None = None) -> Future:
        """Queue ``fn(*args)`` for the child; its ``Future`` holds the result or the exception."""
        future: Future = Future()
        self._jobs.put((future, fn, args, self.timeout if timeout is None else timeout))
        with self._lock:
            if self._runner is None:  # a daemon thread: an exiting app does not wait for a map
                self._runner = threading.Thread(target=self._run_jobs, name="deepsad-maps", daemon=True)
                self._runner.start()
        return future

    def run(self, fn: Callable, *args: Any, timeout: float | None = None) -> Any:
        """``fn(*args)`` in the child, waited for (the caller's thread does not hold the GIL meanwhile)."""
        return self.submit(fn, *args, timeout=timeout).result()

    def warm_up(self) -> Future:
        """Start the child and compile UMAP in it now; later maps queue behind the warm-up."""
        return self.submit(warm_up)

    def umap_map(
        self,
        latents: np.ndarray,
        previous: np.ndarray | None = None,
        config: MapConfig | None = None,
        labels: np.ndarray | None = None,
    ) -> LatentMap:
        """:func:`deepsad_core.loop.projection.umap_map`, drawn in the child."""
        return self.run(umap_map, latents, previous, config, labels)

    def stop(self) -> None:
        """End the child now (a running job fails); the next job starts a new one."""
        with self._lock:
            process, self._process = self._process, None
            if self._pipe is not None:
                self._pipe.close()
                self._pipe = None
        if process is not None and process.is_alive():
            process.terminate()
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join()

    def close(self) -> None:
        """End the child and refuse later jobs (at exit)."""
        with self._lock:
            self._closed = True
        self.stop()

    @property
    def pid(self) -> int | None:
        """The child's process id, while it runs."""
        process = self._process
        return process.pid if process is not None and process.is_alive() else None

    def _run_jobs(self) -> None:
        while True:
            future, fn, args, timeout = self._jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(self._call(fn, args, timeout))
            except BaseException as e:  # delivered to whoever waits on the future
                future.set_exception(e)

    def _call(self, fn: Callable, args: tuple, timeout: float) -> Any:
        pipe = self._connection()
        try:
            pipe.send((fn, args))
            finished = pipe.poll(timeout)
            if finished:
                ok, value = pipe.recv()
        except (EOFError, OSError) as e:  # a closed or broken pipe: the child is gone
            self.stop()
            raise MapProcessError(f"the map process died during the job ({type(e).__name__})") from None
        if not finished:
            self.stop()
            raise TimeoutError(f"the map process did not finish within {timeout:.0f} s; it was stopped")
        if not ok:
            raise value
        return value

    def _connection(self):
        with self._lock:
            if self._closed:
                raise MapProcessError("the map service is closed")
            if self._process is None or not self._process.is_alive():
                context = multiprocessing.get_context("spawn")
                parent, child = context.Pipe()
                self._process = context.Process(target=_serve, args=(child,), name="deepsad-map", daemon=True)
                self._process.start()
                child.close()
                self._pipe = parent
            return self._pipe


_default: MapService | None = None
_default_lock = threading.Lock()


def default_service() -> MapService:
    """This process's map service, made on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = MapService()
        return _default


def start_map_process() -> Future:
    """Start this process's map service and compile UMAP in it now (the app calls it at start-up)."""
    return default_service().warm_up()
