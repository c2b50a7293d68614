"""The ``deepsad`` command line: train, score, export, simulate (see :mod:`deepsad_core.cli.main`)."""

from deepsad_core.cli.main import DEFAULT_DETECTOR, DETECTORS, build_parser, main

__all__ = ["DEFAULT_DETECTOR", "DETECTORS", "build_parser", "main"]
