"""The map service: one low-priority child process, jobs in order, timeouts, and no orphans."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deepsad_core.studio.maps import MAP_PROCESS_NICENESS, MapProcessError, MapService


@pytest.fixture
def service():
    maps = MapService()
    yield maps
    maps.stop()


def test_maps_are_drawn_in_one_lower_priority_child_process(service):
    child = service.run(os.getpid)
    assert child != os.getpid() and service.pid == child
    assert service.run(os.getpid) == child  # one process, reused
    assert service.run(os.nice, 0) == min(os.nice(0) + MAP_PROCESS_NICENESS, 19)


def test_jobs_run_in_the_order_given_and_a_failing_job_says_why(service):
    futures = [service.submit(pow, 2, n) for n in range(5)] + [service.submit(int, "not a number")]
    assert [f.result() for f in futures[:5]] == [1, 2, 4, 8, 16]
    with pytest.raises(ValueError, match="invalid literal"):
        futures[-1].result()
    assert service.run(abs, -3) == 3  # the process lives on


def test_the_map_process_is_replaced_when_it_dies(service):
    first = service.run(os.getpid)
    with pytest.raises(MapProcessError, match="died during the job"):
        service.run(os._exit, 1)  # the child dies mid-job, as if killed for memory
    assert service.run(os.getpid) not in (first, os.getpid())


def test_a_job_past_its_timeout_is_stopped_with_its_process_and_the_next_one_runs(service):
    before = service.run(os.getpid)
    start = time.perf_counter()
    with pytest.raises(TimeoutError, match="did not finish within 1 s"):
        service.run(time.sleep, 30, timeout=1)
    assert time.perf_counter() - start < 10
    assert service.run(os.getpid) != before  # a fresh process; the stuck one was stopped
    with pytest.raises(ProcessLookupError):
        os.kill(before, 0)


def _gone(pid: int, seconds: float) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    return False


def _wait_for(path: Path, seconds: float) -> None:
    deadline = time.time() + seconds
    while not path.exists():
        assert time.time() < deadline, f"the map process never started its job ({path.name} not written)"
        time.sleep(0.05)


def _long_job(marker: Path) -> str:
    """A job that says it has started (the marker file), then keeps the map process busy, as a map does
    (in Python: a shell would hold the server's pipes open after the map process is gone)."""
    job = f"import pathlib, time; pathlib.Path({str(marker)!r}).touch(); time.sleep(120)"
    return f"default_service().submit(exec, {job!r})"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux's prctl")
def test_the_map_process_dies_with_a_killed_server(tmp_path):
    started = tmp_path / "started"
    script = (
        "import os, time; from deepsad_core.studio.maps import default_service; "
        f"print(default_service().run(os.getpid), flush=True); {_long_job(started)}; time.sleep(120)"
    )
    server = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = int(server.stdout.readline())
    _wait_for(started, 30)  # the child is busy with the long job
    server.send_signal(signal.SIGKILL)  # no exit hooks run
    server.wait()
    assert _gone(child, 20), "the map process outlived the killed server"


def test_an_exiting_server_does_not_wait_for_a_map(tmp_path):
    started = tmp_path / "started"
    script = (
        "import os, pathlib, time; from deepsad_core.studio.maps import default_service; "
        f"print(default_service().run(os.getpid), flush=True); {_long_job(started)}; "
        f"[time.sleep(0.05) for _ in range(600) if not pathlib.Path({str(started)!r}).exists()]"
    )
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert time.perf_counter() - start < 30
    assert _gone(int(out.stdout), 10), "the map process outlived the server's exit"


def test_a_closed_service_starts_no_process():
    maps = MapService()
    child = maps.run(os.getpid)
    maps.close()
    assert _gone(child, 10)
    with pytest.raises(MapProcessError, match="closed"):
        maps.run(os.getpid)
