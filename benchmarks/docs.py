"""Write ``docs/benchmarks.md`` from the reports in ``benchmarks/results/`` (nothing typed by hand).

python -m benchmarks.docs           # rewrite docs/benchmarks.md
python -m benchmarks.docs --check   # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.common import RESULTS_DIR

DOC = Path(__file__).parents[1] / "docs" / "benchmarks.md"
# the reports in reading order; any other report follows, by name
ORDER = ("detector_table", "estimates", "estimates-budget100", "label_audit", "backbone_images", "backbone_digits",
         "paper_images_ensemble", "paper_odds",
         "paper_odds_lr1e-3", "paper_images", "reference_loop", "reference_loop_50", "speed", "round_latency",
         "ingest", "score_bundle", "export_parity", "scale", "spark_score", "ddp_satellite")  # fmt: skip
HEADER = """# Benchmarks

Every table below is a report that a benchmark in `benchmarks/` wrote to `benchmarks/results/`, with
the command that produced it and the machine it ran on; this page is generated from them by
`python -m benchmarks.docs`. Benchmarks take the data folder as an argument (`../shared/data` on the
project's machines) and never commit the data. Why the defaults are what they are: `docs/design.md`.
"""


def render() -> str:
    reports = {p.stem: p for p in RESULTS_DIR.glob("*.md")}
    names = [n for n in ORDER if n in reports] + sorted(set(reports) - set(ORDER))
    parts = [HEADER]
    parts += [reports[name].read_text().strip() for name in names]
    return "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="only check that docs/benchmarks.md is up to date")
    args = p.parse_args(argv)
    text = render()
    if args.check:
        if not DOC.exists() or DOC.read_text() != text:
            print(f"{DOC} is out of date: run python -m benchmarks.docs", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    print(f"wrote {DOC} ({len(text):,} characters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
