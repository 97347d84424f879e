"""environment.yml (conda) is kept in step with pyproject.toml: the same dependencies with the same ranges."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "shivx-analytics"
# pip's name with extras -> conda-forge's package (conda has no extras; these packages bring them)
CONDA_NAMES = {"psycopg[binary]": "psycopg", "sqlalchemy[asyncio]": "sqlalchemy"}
CONDA_ONLY = {"python", "pip"}  # the environment itself, not dependencies of the package


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def pyproject_requirements() -> dict[str, SpecifierSet]:
    """Every dependency of the package (core and every extra), by its conda name; the extras that
    name the project itself (dev = test + bench) add nothing of their own."""
    project = pyproject()
    texts = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        texts += [text for text in extra if canonicalize_name(Requirement(text).name) != PROJECT]
    requirements: dict[str, SpecifierSet] = {}
    for text in texts:
        requirement = Requirement(text)
        spelled = canonicalize_name(requirement.name) + (f"[{','.join(sorted(requirement.extras))}]"
                                                          if requirement.extras else "")
        assert not requirement.extras or spelled in CONDA_NAMES, (
            f"{text!r} has extras: add its conda-forge spelling to CONDA_NAMES in {Path(__file__).name}")
        name = CONDA_NAMES.get(spelled, canonicalize_name(requirement.name))
        assert name not in requirements, f"{name} is listed twice in pyproject.toml"
        requirements[name] = requirement.specifier
    return requirements


def environment_entries() -> tuple[dict[str, SpecifierSet], dict[str, str]]:
    """environment.yml's conda and pip entries as {name: range}, and the conda-only pins (python)."""
    document = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    entries: dict[str, SpecifierSet] = {}
    own: dict[str, str] = {}
    for item in document["dependencies"]:
        for text in item["pip"] if isinstance(item, dict) else [item]:
            match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(.*)", text.strip())
            assert match, f"environment.yml: cannot read {text!r}"
            name, spec = canonicalize_name(match[1]), match[2].strip()
            if name in CONDA_ONLY:
                own[name] = spec
                continue
            assert name not in entries, f"{name} is listed twice in environment.yml"
            entries[name] = SpecifierSet(spec)
    return entries, own


def test_every_dependency_and_its_range_is_in_both_files():
    wanted = pyproject_requirements()
    listed, _ = environment_entries()
    missing = {name: str(spec) for name, spec in wanted.items() if name not in listed}
    extra = {name: str(spec) for name, spec in listed.items() if name not in wanted}
    different = {name: (str(wanted[name]), str(listed[name])) for name in wanted.keys() & listed.keys()
                 if wanted[name] != listed[name]}
    assert not missing, f"in pyproject.toml but not in environment.yml: {missing}"
    assert not extra, f"in environment.yml but not in pyproject.toml: {extra}"
    assert not different, f"ranges differ (pyproject.toml, environment.yml): {different}"


def test_jupyterlab_and_the_notebook_runner_are_core_dependencies():
    """`shivx-analytics notebook run` (cron) and `jupyter lab` work without the dev extras."""
    core = {canonicalize_name(Requirement(text).name) for text in pyproject()["dependencies"]}
    assert {"jupyterlab", "papermill", "nbclient", "nbconvert", "ipykernel"} <= core


def test_dev_is_test_plus_bench():
    extras = pyproject()["optional-dependencies"]
    assert [Requirement(text) for text in extras["dev"]] == [Requirement(f"{PROJECT}[test,bench]")]
    assert extras["test"] and extras["bench"]


def test_the_environments_python_satisfies_requires_python():
    _, own = environment_entries()
    python = own["python"].lstrip("=")
    assert SpecifierSet(pyproject()["requires-python"]).contains(Version(python)), (python, pyproject()["requires-python"])
