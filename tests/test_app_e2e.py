"""The app in a real browser: Playwright driving Debian's Chromium against `streamlit run app.py`.

A newcomer's steps through every page, one test each, sharing one server and one browser page; the
first opens the sample. They measure what the user waits for.
Screenshots go to tests/artifacts/ (README's picture: docs/screenshot-label.png).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # a real browser against a served app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server_workspace(tmp_path_factory) -> Path:
    """The workspace the app server keeps its projects in (tests read its SQLite directly)."""
    return tmp_path_factory.mktemp("workspace")


@contextmanager
def _served_app(workspace: Path, log_path: Path) -> Iterator[str]:
    """``streamlit run app.py`` on a free port, its URL once it listens; its log must hold no traceback."""
    port = _free_port()
    env = {**os.environ, "DEEPSAD_WORKSPACE": str(workspace)}
    log = log_path.open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
         "--server.headless", "true", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=20)
    text = log_path.read_text()
    assert "Traceback" not in text, text[-3000:]


@pytest.fixture(scope="module")
def app_url(server_workspace, tmp_path_factory, chromium):  # no server without a browser to drive it
    with _served_app(server_workspace, tmp_path_factory.mktemp("log") / "streamlit.log") as url:
        yield url


@pytest.fixture(scope="module")
def page(app_url, chromium):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(60_000)
        yield page
        browser.close()


def _no_traceback(page) -> None:
    body = page.content()
    assert "Traceback" not in body and "stException" not in body


def _items(page, section: str) -> list[str]:
    """The keys of the decision controls of one queue section, in page order."""
    # Streamlit turns a widget's key into a class, dots becoming dashes: st-key-label-most_anomalous-12
    classes = page.locator(f'[class*="st-key-label-{section}-"]').evaluate_all("els => els.map(e => e.className)")
    return [next(c for c in cls.split() if c.startswith("st-key-")) for cls in classes]


# In the page's own clock: from the click event on a card to the first frame painted without it
# (the next item has moved up). Playwright's own round trip (actionability checks, polling) is not
# something the user waits for, so it is reported beside this figure, not in it.
WATCH_CARD = """key => {
  const card = document.querySelector(`[class~="${key}"]`);
  window.__clicked = null; window.__shown = null;
  card.addEventListener("click", () => { window.__clicked ??= performance.now(); }, {capture: true, once: true});
  const watcher = new MutationObserver(() => {
    if (document.contains(card)) return;
    watcher.disconnect();
    requestAnimationFrame(() => setTimeout(() => { window.__shown = performance.now(); }));
  });
  watcher.observe(document.body, {childList: true, subtree: true});
}"""


def _label(page, key: str, which: str) -> tuple[float, float]:
    """Click Normal/Anomalous on one item; seconds until the next item is shown (page clock) and
    seconds of Playwright's whole round trip (click call to the card seen gone)."""
    card = page.locator(f'[class~="{key}"]')
    page.evaluate(WATCH_CARD, key)
    start = time.perf_counter()
    card.get_by_role("radio", name=which).click()
    card.wait_for(state="detached")
    round_trip = time.perf_counter() - start
    page.wait_for_function("() => window.__shown !== null && window.__clicked !== null")
    return page.evaluate("() => window.__shown - window.__clicked") / 1000, round_trip


def _hover_somewhere(page, x0: float, y0: float, w: float, h: float) -> str:
    """Sweep the mouse over the plot until a point's hover label shows; its text."""
    label = page.locator(".hoverlayer .hovertext")
    for fy in np.linspace(0.05, 0.95, 19):
        for fx in np.linspace(0.05, 0.95, 29):
            page.mouse.move(x0 + fx * w, y0 + fy * h)
            if label.count():
                return label.first.text_content() or ""  # an SVG group: no inner_text
    return ""


def _metric(page, label: str) -> str:
    """The value shown under one of the Label page's counters."""
    metric = page.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return metric.locator('[data-testid="stMetricValue"]').inner_text()


def _wait_for_metric(page, label: str, value: str, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while _metric(page, label) != value:
        assert time.time() < deadline, f"{label}: {_metric(page, label)}, expected {value}"
        page.wait_for_timeout(100)


@pytest.fixture(scope="module")
def sample(page, app_url):
    """The breast-cancer sample opened from an empty workspace, as a newcomer does; seconds to its queue."""
    page.goto(app_url)
    page.get_by_text("Your workspace is empty").wait_for()
    page.screenshot(path=ARTIFACTS / "projects.png", full_page=True)
    start = time.perf_counter()
    page.get_by_role("button", name="Open sample: Breast cancer (table)").click()
    page.get_by_text("Queue (").first.wait_for(timeout=120_000)
    first_queue = time.perf_counter() - start
    page.get_by_role("radio", name="Anomalous").first.wait_for()  # the cards' controls are drawn
    page.screenshot(path=ARTIFACTS / "label.png", full_page=True)
    print(f"\nE2E: create sample project -> first queue: {first_queue:.1f} s")
    with (ARTIFACTS / "timings.txt").open("w") as f:
        f.write(f"first_queue_s={first_queue:.2f}\n")
    return first_queue


@pytest.fixture(autouse=True)
def _screenshot_on_failure(request, page):
    yield
    if getattr(request.node, "failed", False):
        page.screenshot(path=ARTIFACTS / f"failure-{request.node.name}.png", full_page=True)


def test_the_sample_opens_on_its_first_queue_within_a_minute(page, sample):
    assert sample <= 60, f"the first queue took {sample:.0f} s"
    _no_traceback(page)


def _label_ten(page, name: str) -> float:
    """Label the first ten cards in the queue's order, the most anomalous ones anomalous and the rest
    normal, check the counters, and report the median milliseconds from a click to the next item."""
    before = {kind: int(_metric(page, f"Labeled {kind}")) for kind in ("normal", "anomalous")}
    latencies, round_trips = [], []
    given = {"Anomalous": 0, "Normal": 0}
    for _ in range(10):
        key = _card_keys(page)[0]
        answer = "Anomalous" if key.startswith("st-key-label-most_anomalous-") else "Normal"
        shown, round_trip = _label(page, key, answer)
        given[answer] += 1
        latencies.append(shown)
        round_trips.append(round_trip)
    assert given["Anomalous"] >= 2  # the first cards hold the top scores
    _wait_for_metric(page, "Labeled anomalous", str(before["anomalous"] + given["Anomalous"]))
    _wait_for_metric(page, "Labeled normal", str(before["normal"] + given["Normal"]))
    median_ms = statistics.median(latencies) * 1000
    each = ", ".join(f"{t * 1000:.0f}" for t in latencies)
    print(f"\nE2E: {name}: label click -> next item shown: median {median_ms:.0f} ms; each: {each}")
    print(f"E2E:   Playwright's round trip for the same clicks: median {statistics.median(round_trips) * 1000:.0f} ms")
    with (ARTIFACTS / "timings.txt").open("a") as f:
        f.write(f"{name}_label_median_ms={median_ms:.0f}\n{name}_label_ms={each}\n")
    return median_ms


def test_labels_are_counted_and_the_next_item_shows_within_300_ms(page, sample):
    page.get_by_role("link", name="Label").click()
    median_ms = _label_ten(page, "sample")
    assert median_ms <= 300, f"a label click takes {median_ms:.0f} ms (median) to show the next item"


def test_undo_takes_back_this_sessions_last_label(page, sample):
    page.get_by_role("link", name="Label").click()
    normal = int(_metric(page, "Labeled normal"))
    _label(page, _items(page, "diverse")[0], "Normal")
    _wait_for_metric(page, "Labeled normal", str(normal + 1))
    page.get_by_role("button", name="Undo last action").click()
    page.get_by_text("Undid the label of 1 sample(s).").wait_for()
    _wait_for_metric(page, "Labeled normal", str(normal))


def _card_keys(page) -> list[str]:
    """Every queue card's key class, in page order (the order the keys move through)."""
    classes = page.locator('[class*="st-key-label-"]').evaluate_all("els => els.map(e => e.className)")
    keys = [next(c for c in cls.split() if c.startswith("st-key-label-")) for cls in classes]
    return [k for k in keys if k.split("-")[-1].isdigit()]


def _wait_for_label(project, index: int, label: str | None) -> None:
    deadline = time.time() + 30
    while project.labels().get(index) != label:
        assert time.time() < deadline, f"sample {index}: {project.labels().get(index)}, expected {label}"
        time.sleep(0.1)


def test_keys_label_the_card_in_focus_and_undo(page, sample, server_workspace):
    from deepsad_core.studio import Project

    project = Project.open(Project.path_for(server_workspace, "Sample - Breast cancer"))
    page.get_by_role("link", name="Label").click()
    page.get_by_text("move to the next / previous card").wait_for()
    page.wait_for_function("() => window.__deepsadKeys === true")  # the listener is in
    first, second = _card_keys(page)[:2]
    page.keyboard.press("a")  # the first card has the focus
    page.locator(f'[class~="{first}"]').wait_for(state="detached")
    _wait_for_label(project, int(first.split("-")[-1]), "anomalous")
    second_now = _card_keys(page)[1]
    page.keyboard.press("j")
    page.keyboard.press("n")
    page.locator(f'[class~="{second_now}"]').wait_for(state="detached")
    _wait_for_label(project, int(second_now.split("-")[-1]), "normal")
    page.keyboard.press("u")
    page.get_by_text("Undid the label of 1 sample(s).").wait_for()
    _wait_for_label(project, int(second_now.split("-")[-1]), None)
    assert project.labels().get(int(first.split("-")[-1])) == "anomalous" and second != first


def test_a_round_trains_in_the_background_while_labeling_goes_on(page, sample):
    # make the round long enough to watch (settings), start it, and label while it runs
    page.get_by_role("link", name="Projects").click()
    page.get_by_label("Epochs per later round").fill("3000")
    page.get_by_role("button", name="Save settings").click()
    page.get_by_text("Saved; the next round uses them.").wait_for()
    page.get_by_role("link", name="Label").click()
    rounds_before = int(_metric(page, "Round"))
    page.get_by_role("button", name="Train next round").first.click()
    page.get_by_text(f"Round {rounds_before + 1}: train epoch").wait_for()  # live progress from the worker
    _label(page, _items(page, "diverse")[0], "Normal")
    page.get_by_text(f"Round {rounds_before + 1}: train epoch").wait_for()  # labeling did not wait for it
    try:
        _wait_for_metric(page, "Round", str(rounds_before + 1), timeout=120)
    finally:
        page.screenshot(path=ARTIFACTS / "round-1.png", full_page=True)
    page.reload()  # the open project survives a reload
    page.locator('[data-testid="stMetricValue"]').first.wait_for()
    assert _metric(page, "Round") == str(rounds_before + 1)
    _no_traceback(page)


def test_the_map_shows_a_sample_on_hover_and_labels_a_lasso(page, sample):
    page.get_by_role("link", name="Map").click()
    chart = page.locator('[data-testid="stPlotlyChart"]')
    chart.wait_for()
    page.wait_for_timeout(1500)
    box = chart.locator(".nsewdrag").first.bounding_box()
    x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
    assert "score" in _hover_somewhere(page, x0, y0, w, h)  # hovering a point shows the sample
    assert page.get_by_label("Your name (recorded with each label)").input_value() == "expert"  # kept across pages
    page.mouse.move(x0 + 0.02 * w, y0 + 0.02 * h)
    page.mouse.down()
    for fx, fy in ((0.25, 0.02), (0.5, 0.02), (0.5, 0.5), (0.5, 0.98), (0.25, 0.98), (0.02, 0.98), (0.02, 0.5)):
        page.mouse.move(x0 + fx * w, y0 + fy * h, steps=5)
    page.mouse.up()
    selected = page.get_by_text("sample(s) selected")
    selected.wait_for()
    page.screenshot(path=ARTIFACTS / "map.png", full_page=True)
    page.get_by_text("Yes, label all").click()
    page.get_by_role("button", name="Apply label").click()
    page.get_by_text("Labeled ").first.wait_for()
    _no_traceback(page)


def test_the_rounds_page_shows_the_history_and_the_score_histogram(page, sample):
    page.get_by_role("link", name="Rounds").click()
    page.get_by_text("Scores of the current round").wait_for()
    page.locator('[data-testid="stDataFrame"]').wait_for()
    histogram = page.locator('[data-testid="stPlotlyChart"]').first
    histogram.locator(".barlayer .point").first.wait_for()
    assert histogram.locator(".annotation-text").first.text_content().startswith("threshold: ")  # SVG text
    page.screenshot(path=ARTIFACTS / "rounds.png", full_page=True)


def test_the_exported_bundle_scores_outside_the_app_and_scores_an_upload(page, sample, tmp_path):
    # the threshold starts at the suggested one; build, download, load the bundle outside the app
    page.get_by_role("link", name="Export").click()
    share = page.get_by_text("Suggested:").inner_text().split()[1]  # "Suggested: 9.0% flagged (34), ..."
    assert page.locator('[data-testid="stSliderThumbValue"]').first.inner_text().startswith(f"{share} flagged")
    page.get_by_role("button", name="Build the detector bundle").click()
    page.get_by_text("Bundle ready").wait_for(timeout=120_000)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the detector (.zip)").click()
    bundle = tmp_path / "detector.zip"
    download.value.save_as(bundle)
    from deepsad_core import load_detector

    detector = load_detector(bundle)
    assert detector.decision_function(ROOT / "sample_data" / "breast_cancer.csv").shape == (376,)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        str(ROOT / "sample_data" / "breast_cancer.csv")
    )
    page.get_by_role("button", name="Download the scores (.csv)").wait_for()
    page.screenshot(path=ARTIFACTS / "export.png", full_page=True)
    _no_traceback(page)


def _upload(page, app_url: str, path: Path, name: str) -> None:
    """Choose a file on the Projects page's form and name the project (not yet created)."""
    page.goto(app_url)
    page.get_by_role("link", name="Projects").click()
    page.get_by_text("New project from your data").wait_for()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(path))
    page.get_by_label("Project name").fill(name)
    page.get_by_text(path.name).wait_for()  # the upload has reached the server


def test_a_malformed_upload_gets_a_message_not_a_traceback(page, app_url, tmp_path):
    bad = tmp_path / "broken.csv"
    bad.write_text("a,b,c\n1,2,3\n4,5\n")
    _upload(page, app_url, bad, "broken")
    page.get_by_role("button", name="Create project").click()
    try:
        page.get_by_text("This data cannot be used").wait_for()
    finally:
        page.screenshot(path=ARTIFACTS / "bad-upload.png", full_page=True)
    page.get_by_text("different number of fields").wait_for()
    _no_traceback(page)


def test_photos_go_through_the_pretrained_backbone_and_queue_within_a_minute(page, app_url, tmp_path):
    import zipfile

    from conftest import make_photos
    from PIL import Image

    # 1,000 generated colour photos, 900 in normal/ and 100 noise images in anomaly/ (truth by folder)
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i, px in enumerate(make_photos(1000, seed=3)):
            path = tmp_path / "p.png"
            Image.fromarray(px).save(path)
            zf.write(path, f"{'anomaly' if i >= 900 else 'normal'}/p{i:04d}.png")
    _upload(page, app_url, archive, "photos")
    start = time.perf_counter()
    page.get_by_role("button", name="Create project").click()
    page.get_by_text("Queue (").first.wait_for(timeout=120_000)
    first_queue = time.perf_counter() - start
    page.locator('[data-testid="stImage"] img').first.wait_for()  # the photos themselves are shown
    page.screenshot(path=ARTIFACTS / "photos-label.png", full_page=True)
    key = _items(page, "most_anomalous")[0]
    _label(page, key, "Anomalous")
    page.get_by_role("link", name="Projects").click()
    page.get_by_text("This project's images go through the backbone.").wait_for()
    _no_traceback(page)
    print(f"\nE2E: 1,000 photos, create project -> first queue: {first_queue:.1f} s")
    with (ARTIFACTS / "timings.txt").open("a") as f:
        f.write(f"photos_first_queue_s={first_queue:.2f}\n")
    assert first_queue <= 60, f"the first queue on 1,000 photos took {first_queue:.0f} s"


def test_a_million_row_project_labels_as_quickly_and_maps_a_sample(page, app_url, server_workspace):
    """A label click does not wait longer on 1,000,000 rows, and the map draws a sample of them.
    Round 0 trains a few epochs only: the click's cost does not depend on them (benchmarks/scale.py
    times the app's default rounds at this size)."""
    import pandas as pd

    from deepsad_core.loop.settings import RoundConfig
    from deepsad_core.studio import Project
    from deepsad_core.studio.worker import RoundWorker

    rng = np.random.default_rng(0)
    n = 1_000_000
    truth = rng.random(n) < 0.01
    X = rng.normal(0, 1, (n, 9)).astype(np.float32) + truth[:, None] * np.float32(4)
    table = pd.DataFrame(X, columns=[f"sensor_{j}" for j in range(9)]).assign(truth=truth.astype(np.int8))
    project = Project.create(server_workspace, "million rows", table)
    worker = RoundWorker(project)
    assert worker.run(RoundConfig(first_ae_epochs=2, first_epochs=2)).state == "done"
    worker.wait_for_map()
    page.get_by_role("link", name="Projects").click()
    page.locator('[class~="st-key-projects-open-million-rows"]').get_by_role("button", name="Open").click()
    page.get_by_text("Queue (").first.wait_for()
    page.get_by_role("radio", name="Anomalous").first.wait_for()
    median_ms = _label_ten(page, "million_rows")
    page.screenshot(path=ARTIFACTS / "million-rows-label.png", full_page=True)
    page.get_by_role("link", name="Map").click()
    page.get_by_text("of 1,000,000 samples: the same random sample every round").wait_for()
    page.locator('[data-testid="stPlotlyChart"]').wait_for()
    _no_traceback(page)
    assert median_ms <= 300, f"on 1,000,000 rows a label click takes {median_ms:.0f} ms (median)"


def test_a_page_opened_by_its_address_as_the_servers_first_request_is_the_apps(page, tmp_path):
    """With a ``pages/`` folder beside ``app.py``, Streamlit would serve a fresh server's first request for
    a page's address the old way, without ``app.py``'s navigation; the app hands it over at once."""
    (tmp_path / "workspace").mkdir()
    with _served_app(tmp_path / "workspace", tmp_path / "streamlit.log") as url:
        page.goto(f"{url}/rounds")
        nav = page.get_by_test_id("stSidebarNav")
        nav.get_by_text("Projects", exact=True).wait_for()  # app.py's page titles, not the files' names
        assert nav.get_by_text("projects", exact=True).count() == 0
        expect_url = f"{url}/rounds"
        assert page.url.rstrip("/") == expect_url


def _flagged(page) -> int:
    return int(_metric(page, "Flagged").split(" of ")[0].replace(",", ""))


def test_scores_spanning_thirty_decades_read_as_shares_and_short_ticks(page, app_url, server_workspace):
    """A round whose raw scores run from 0.01 to 1e34 (as a detector's did before its score was
    bounded): the slider reads as shares flagged and moves them a step at a time, the chart's axis is
    the share flagged, and the histogram's ticks stay few and short."""
    from deepsad_core.loop.settings import RoundConfig
    from deepsad_core.studio import Project
    from deepsad_core.studio.worker import RoundWorker

    project = Project.create(server_workspace, "wide scores", ROOT / "sample_data" / "breast_cancer.csv")
    worker, fast = RoundWorker(project), RoundConfig(first_ae_epochs=2, first_epochs=2, epochs_per_round=2)
    assert worker.run(fast).state == "done"
    truth = project.truth()
    for q in project.current_round().queue[:12]:  # the first cards answered, check samples among them
        project.label(q["index"], "anomalous" if truth[q["index"]] else "normal")
    assert worker.run(fast).state == "done"
    current = project.current_round()
    ordered = np.sort(current.scores)
    wide = 10.0 ** (-2 + 36 * np.linspace(0, 1, len(ordered)) ** 3)  # the same order, thirty-six decades
    for name in ("scores", "held_out"):
        np.save(current.path / f"{name}.npy", np.interp(np.load(current.path / f"{name}.npy"), ordered, wide))
    threshold = json.loads((current.path / "threshold.json").read_text())
    threshold["value"] = float(np.interp(threshold["value"], ordered, wide))
    (current.path / "threshold.json").write_text(json.dumps(threshold))
    page.goto(app_url)
    page.get_by_role("link", name="Projects").click()
    page.locator('[class~="st-key-projects-open-wide-scores"]').get_by_role("button", name="Open").click()
    page.get_by_text("Queue (").first.wait_for()
    page.get_by_role("link", name="Export").click()
    thumb = page.locator('[data-testid="stSliderThumbValue"]').first
    thumb.wait_for()
    assert re.fullmatch(r"\d+\.\d% flagged \(\d+\)", thumb.inner_text()), thumb.inner_text()
    steps = [_flagged(page)]
    page.get_by_role("slider").first.focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
        deadline = time.time() + 30
        while _flagged(page) == steps[-1]:
            assert time.time() < deadline, "the slider did not move the flagged count"
            page.wait_for_timeout(100)
        steps.append(_flagged(page))
    assert all(0 < abs(b - a) <= 0.02 * 376 for a, b in itertools.pairwise(steps)), steps  # a few rows a step
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    assert "samples flagged (%)" in chart.locator(".xtitle").text_content()
    assert {t.text_content() for t in chart.locator(".legendtext").all()} == {"estimated precision", "estimated recall"}
    page.screenshot(path=ARTIFACTS / "export-wide-scores.png", full_page=True)
    page.get_by_role("link", name="Rounds").click()
    histogram = page.locator('[data-testid="stPlotlyChart"]').first
    histogram.locator(".barlayer .point").first.wait_for()
    ticks = [t.text_content() for t in histogram.locator(".xtick text").all()]
    assert 2 <= len(ticks) <= 8 and all(len(t) <= 7 for t in ticks), ticks
    table = page.locator('[data-testid="stDataFrame"]').first.inner_text()
    assert "None" not in table
    _no_traceback(page)
