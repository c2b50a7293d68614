"""Small renderers shared by the pages."""

import numpy as np

from pages.common import SHADES, text_sketch


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
