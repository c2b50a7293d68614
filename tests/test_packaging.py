"""Packaging: every package the app, the engine and the CLI import is declared and pinned."""

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).parents[1]
# imported only when asked for (a timm backbone, Spark scoring); declared as extras, not in the app's pins
OPTIONAL = {"timm", "pyspark"}


def _imported_packages() -> set[str]:
    files = [*ROOT.joinpath("deepsad_core").rglob("*.py"), *ROOT.joinpath("pages").glob("*.py"), ROOT / "app.py"]
    found = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m not in ("deepsad_core", "pages")}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_every_import_is_declared_in_pyproject_and_pinned_in_the_requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_name(r) for r in project["dependencies"]}
    declared |= {_name(r) for extra in project["optional-dependencies"].values() for r in extra}
    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    pinned = {_name(line) for line in lines if "==" in line}
    distributions = packages_distributions()
    for module in sorted(_imported_packages()):
        names = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        assert names & declared, f"{module} is imported but not declared in pyproject.toml"
        assert module in OPTIONAL or names & pinned, f"{module} is imported but not pinned in requirements.txt"
