"""Finding a Chromium for the browser tests: Playwright's own, then the system's, then an install.

Where none can be had (no browser and no network to fetch one) the browser tests are skipped with
the reason in pytest's summary, unless ``DEEPSAD_REQUIRE_BROWSER`` is set (CI sets it): then the
skip becomes a failure, so CI always runs them in a real browser.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

SYSTEM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
REQUIRE_VARIABLE = "DEEPSAD_REQUIRE_BROWSER"
INSTALL_TIMEOUT_S = 300


def playwright_chromium() -> str | None:
    """The Chromium that ``playwright install chromium`` puts in its cache, if it is there."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    with sync_playwright() as p:
        path = p.chromium.executable_path
    return path if path and Path(path).is_file() else None


def system_chromium() -> str | None:
    return next((found for name in SYSTEM_NAMES if (found := shutil.which(name))), None)


def install_playwright_chromium() -> str:
    """Try ``python -m playwright install chromium``; returns why it failed ("" on success)."""
    try:
        result = subprocess.run(
            [sys.executable, "-m", "playwright", "install", "chromium"],
            capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{type(e).__name__}: {e}"
    if result.returncode:
        lines = [line.strip() for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("Error:")]
        return (errors or lines or [f"exit status {result.returncode}"])[0]
    return ""


def find_chromium() -> tuple[str | None, str]:
    """A Chromium executable, or None and the reason none was found."""
    found = playwright_chromium() or system_chromium()
    if found:
        return found, ""
    why = install_playwright_chromium()
    found = playwright_chromium()
    if found:
        return found, ""
    return None, (
        f"no Chromium for the browser tests: none from Playwright, none of {', '.join(SYSTEM_NAMES)} on the PATH, "
        f"and `python -m playwright install chromium` failed ({why or 'no browser after it'}); "
        "install one (apt-get install -y chromium) to run them"
    )


def browser_required() -> bool:
    return os.environ.get(REQUIRE_VARIABLE, "") not in ("", "0")
