"""docs/benchmarks.md is generated from benchmarks/results/, and committed up to date."""

from benchmarks import docs


def test_benchmarks_page_is_generated_from_the_committed_reports():
    text = docs.render()
    for report in sorted(docs.RESULTS_DIR.glob("*.md")):
        assert report.read_text().strip() in text
    assert docs.DOC.read_text() == text, "run: python -m benchmarks.docs"
