"""The house's rules, checked: layers imported downwards only, no circle, the pages' one door, small
modules, and nobody outside a detector reading its members (docs/architecture.md)."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
ENGINE = ROOT / "deepsad_core"
MAX_LINES = 400
# a detector's members and internals: only deepsad_core/detectors may name them
MEMBER_ATTRIBUTES = re.compile(
    r"\.(deepsad_|iforest_|supervised_|reference_|scales_|weights_|label_auc_|member_scores_?|net_|coef_)\b"
)


def _lint_imports(cwd: Path, env_path: Path) -> subprocess.CompletedProcess:
    lint = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    env = {"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(env_path), "HOME": str(cwd)}
    return subprocess.run([lint, "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_import_contracts_hold():
    result = _lint_imports(ROOT, ROOT)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def test_an_import_up_a_layer_breaks_the_contract(tmp_path):
    """The check can fail: the label vocabulary (ground floor) importing the studio is refused."""
    shutil.copytree(ENGINE, tmp_path / "deepsad_core", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    labels = tmp_path / "deepsad_core" / "base" / "labels.py"
    labels.write_text(labels.read_text() + "\nimport deepsad_core.studio.project  # noqa\n")
    result = _lint_imports(tmp_path, tmp_path)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout and "deepsad_core.base.labels -> deepsad_core.studio.project" in result.stdout


def _imported(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


@pytest.mark.parametrize("page", [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py"))], ids=lambda p: p.name)
def test_the_pages_reach_the_engine_through_the_studio_only(page):
    engine = {m for m in _imported(page) if m.split(".")[0] == "deepsad_core"}
    assert engine <= {"deepsad_core.studio"}, engine


def test_no_module_is_over_400_lines():
    sizes = {
        str(p.relative_to(ROOT)): len(p.read_text().splitlines())
        for p in [*ENGINE.rglob("*.py"), *(ROOT / "pages").glob("*.py")]
    }
    assert {p: n for p, n in sizes.items() if n > MAX_LINES} == {}


def test_nothing_outside_the_detectors_names_their_members_or_their_union():
    outside = [p for p in [*ENGINE.rglob("*.py"), *(ROOT / "pages").glob("*.py"), *(ROOT / "benchmarks").glob("*.py")]
               if "detectors" not in p.parts]  # fmt: skip
    offenders = {}
    for path in outside:
        text = path.read_text()
        hits = MEMBER_ATTRIBUTES.findall(text) + re.findall(
            r"DeepSAD \| DeepSADEnsemble|DeepSADEnsemble \| DeepSAD", text
        )
        if hits:
            offenders[str(path.relative_to(ROOT))] = sorted(set(hits))
    assert offenders == {}
