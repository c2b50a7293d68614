"""Small renderers shared by the pages."""

import numpy as np

from pages.common import SHADES, score_histogram, text_sketch


def _rows(sketch: str) -> list[str]:
    return sketch.split("<br>")


def test_a_sketch_shows_the_ink_and_keeps_the_proportions():
    image = np.zeros((28, 28, 1), dtype=np.uint8)
    image[7:21, 7:21] = 255  # a bright square on black, as MNIST draws digits
    rows = _rows(text_sketch(image, width=14))
    assert len(rows) == 14 and {len(r) for r in rows} == {28}  # two characters per pixel
    assert set(rows[0]) == {SHADES[0]}  # blank background
    assert rows[7][14:16] == SHADES[-1] * 2  # full ink in the middle


def test_dark_ink_on_a_light_background_is_drawn_as_ink_too():
    image = np.full((20, 40, 3), 255, dtype=np.uint8)
    image[8:12, 10:30] = 0  # a black bar on white, in colour
    rows = _rows(text_sketch(image, width=20))
    assert len(rows) == 10  # half as tall as wide, like the image
    assert set(rows[0]) == {SHADES[0]} and SHADES[-1] in rows[5]


def test_the_score_histogram_spreads_skewed_scores_and_marks_the_threshold():
    scores = np.random.default_rng(0).lognormal(mean=-2.0, sigma=1.5, size=2000)  # squared distances: skewed
    threshold = float(np.quantile(scores, 0.95))
    fig = score_histogram(scores, threshold)
    drawn = np.asarray(fig.data[0].x)
    # on the score axis itself the first of 60 bars holds most samples; on the log axis none does
    assert np.histogram(scores, 60)[0].max() > 0.5 * len(scores)
    assert np.histogram(drawn, 60)[0].max() < 0.1 * len(scores)
    line = fig.layout.shapes[0]
    assert np.isclose(10**line.x0, threshold)
    ticks = dict(zip(fig.layout.xaxis.tickvals, fig.layout.xaxis.ticktext, strict=True))
    assert all(np.isclose(10**v, float(t), rtol=0.01) for v, t in ticks.items())  # ticks read as scores
    assert {"0.01", "0.1", "1"} <= set(ticks.values())


def test_the_score_histogram_survives_a_zero_score():
    fig = score_histogram(np.array([0.0, 0.5, 1.0, 2.0]), 1.0)
    assert np.isfinite(fig.data[0].x).all() and min(fig.data[0].x) == np.log10(0.5)


def test_uploaded_text_cannot_become_a_link_an_image_or_a_directive():
    from pages.common import plain

    for hostile in ("[click](http://evil.example)", "![x](http://tracker.example/p.png)", ":red[alarm]", "$x^2$"):
        escaped = plain(hostile)
        assert "](" not in escaped and ":red[" not in escaped and not escaped.startswith("$")
        # every character is still there, shown as typed
        assert escaped.replace("\\", "") == hostile
    assert plain("line one\nline two") == "line one line two"


def test_messages_for_the_browser_show_no_server_folders():
    from pages.common import without_paths

    message = (
        "FileExistsError: a project named 'pump' already exists in /home/ana/deepsad-workspace; "
        "the weights file was not found: /tmp/x/weights.pth (see https://example.org/a/b, 3/4 done)"
    )
    shown = without_paths(message)
    assert "/home" not in shown and "/tmp" not in shown
    assert "exists in deepsad-workspace;" in shown and "not found: weights.pth" in shown
    assert "https://example.org/a/b" in shown and "3/4 done" in shown
