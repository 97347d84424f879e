"""The layer rules of docs/development.md ("Layers"), checked by reading every import of the package.

Every module under shivx_analytics/ is parsed with `ast`; every import counts, wherever it is written:
at the top, inside a function (the lazy imports that keep --help fast), under ``if TYPE_CHECKING:``,
and a dynamic import of a literal name (``importlib.import_module("shivx_analytics.db")``). Modules
are placed in layers by name prefix, so a module split into a package (frames.py -> frames/) keeps
its layer and a new module under a known prefix needs nothing here. A module in no layer fails the
test: place it in docs/development.md's table and in LAYERS below.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "shivx_analytics"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE
DOC = "docs/development.md, Layers"

# docs/development.md's table, top row first. A module may import its own row and the rows below it.
# The package itself ("shivx_analytics", its __init__: the lazily imported public names) is an entry point.
LAYERS: tuple[tuple[str, ...], ...] = (
    (PACKAGE, "cli", "notebook_runner"),
    ("reports",),
    ("plots",),
    ("demo", "roles", "controls"),
    ("aggregates",),
    ("metrics",),
    ("frames", "audit_chain", "chain_checkpoints", "_arrow"),
    ("sources", "deadline"),
    ("db", "partitions"),
    ("models", "types"),
    ("security", "triggers"),
    ("config",),
    ("domain",),
)

# Libraries that reach a database (metrics and plots import none of them).
DATABASE_LIBRARIES = frozenset({
    "sqlalchemy", "sqlmodel", "alembic", "psycopg", "psycopg2", "asyncpg", "aiosqlite", "sqlite3", "duckdb",
    "adbc_driver_manager", "adbc_driver_sqlite", "adbc_driver_postgresql", "connectorx",
})
# What reports may take from SQLAlchemy: the types a `source` can be, never a way to write SQL.
REPORT_SQLALCHEMY_TYPES = frozenset({"sqlalchemy.engine", "sqlalchemy.orm"})
DATAFRAME_LIBRARIES = frozenset({"pandas", "numpy", "pyarrow", "matplotlib", "polars"})


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    imported: str  # dotted module name (of ours: resolved to the submodule when one is named)
    line: int

    @property
    def top(self) -> str:
        return self.imported.split(".")[0]

    @property
    def ours(self) -> bool:
        return self.top == PACKAGE

    def __str__(self) -> str:
        return f"{self.importer} (line {self.line}) imports {self.imported}"


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_our_module(name: str, root: Path = ROOT) -> bool:
    """True when `name` (shivx_analytics.x.y) is a module or a package of ours, not a name in one."""
    relative = Path(*name.split(".")[1:]) if "." in name else Path()
    base = root / relative
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


# Calls whose first argument, a literal, is a module imported at run time: importlib.import_module("x"),
# __import__("x"), and cli.py's _LazyModule("shivx_analytics.db") (imported on first attribute access).
DYNAMIC_IMPORTERS = frozenset({"import_module", "__import__", "_LazyModule"})


def _callee(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    return call.func.attr if isinstance(call.func, ast.Attribute) else None


def imports_of(importer: str, text: str, *, is_package: bool = False, root: Path = ROOT) -> list[Import]:
    """Every import in a module's text, at any depth of the tree."""
    package = importer if is_package else importer.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found.extend(Import(importer, alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                # `from shivx_analytics import db` imports the module shivx_analytics.db
                named = candidate if candidate.split(".")[0] == PACKAGE and is_our_module(candidate, root) else base
                found.append(Import(importer, named, node.lineno))
        elif isinstance(node, ast.Call) and node.args and _callee(node) in DYNAMIC_IMPORTERS:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.append(Import(importer, first.value, node.lineno))
    return found


def package_imports(root: Path = ROOT) -> list[Import]:
    found: list[Import] = []
    for path in sorted(root.rglob("*.py")):
        found.extend(imports_of(module_name(path, root), path.read_text(), is_package=path.name == "__init__.py",
                                root=root))
    return found


def under(name: str, prefix: str) -> bool:
    """`name` is `shivx_analytics.<prefix>` or inside it (the package itself only for prefix == PACKAGE)."""
    full = PACKAGE if prefix == PACKAGE else f"{PACKAGE}.{prefix}"
    return name == full or (prefix != PACKAGE and name.startswith(full + "."))


def layer_of(name: str) -> int | None:
    """The row of LAYERS (0 = top) of a module of ours, by prefix; None when it is in no row."""
    for row, prefixes in enumerate(LAYERS):
        if any(under(name, prefix) for prefix in prefixes):
            return row
    return None


def layer_text(row: int) -> str:
    return " / ".join(LAYERS[row])


# --- the rules: each returns one message per violation -------------------------------------------------------------

def rule_every_module_has_a_layer(imports: list[Import], modules: list[str]) -> list[str]:
    return [f"{name} is in no layer: place it in the table of {DOC} and in LAYERS (tests/test_layers.py)"
            for name in modules if layer_of(name) is None]


def rule_imports_point_downward(imports: list[Import], modules: list[str]) -> list[str]:
    problems = []
    for item in imports:
        if not item.ours:
            continue
        mine, theirs = layer_of(item.importer), layer_of(item.imported)
        if mine is None or theirs is None:
            continue  # reported by rule_every_module_has_a_layer
        if theirs < mine:
            problems.append(f"{item}: an upward import, from the layer {layer_text(mine)} to the layer above it "
                            f"{layer_text(theirs)} (rule: imports only point downward, {DOC})")
    return problems


def rule_domain_is_dependency_free(imports: list[Import], modules: list[str]) -> list[str]:
    return [f"{item}: the domain kernel imports only the standard library and nothing of the package "
            f"(rule: domain is dependency-free, {DOC})"
            for item in imports
            if under(item.importer, "domain") and not under(item.imported, "domain")
            and (item.ours or item.top not in sys.stdlib_module_names)]


def rule_models_never_import_dataframes(imports: list[Import], modules: list[str]) -> list[str]:
    return [f"{item}: models never import pandas, numpy, pyarrow or matplotlib (rule: models stay free of "
            f"data-frame libraries, {DOC})"
            for item in imports if under(item.importer, "models") and item.top in DATAFRAME_LIBRARIES]


def rule_metrics_are_pure(imports: list[Import], modules: list[str]) -> list[str]:
    problems = []
    for item in imports:
        if not under(item.importer, "metrics"):
            continue
        if item.ours and not (under(item.imported, "metrics") or under(item.imported, "domain")):
            problems.append(f"{item}: metrics import only metrics and domain of the package "
                            f"(rule: metrics are pure functions, no database, no I/O, {DOC})")
        elif item.top in DATABASE_LIBRARIES:
            problems.append(f"{item}: metrics never touch a database (rule: metrics are pure functions, {DOC})")
    return problems


def rule_reports_write_no_sql(imports: list[Import], modules: list[str]) -> list[str]:
    return [f"{item}: reports take from SQLAlchemy only the types of a source (sqlalchemy.engine, sqlalchemy.orm), "
            f"never a way to write SQL (rule: reports never write SQL, {DOC})"
            for item in imports
            if under(item.importer, "reports") and item.top in DATABASE_LIBRARIES
            and not any(item.imported == allowed or item.imported.startswith(allowed + ".")
                        for allowed in REPORT_SQLALCHEMY_TYPES)]


def rule_plots_read_no_database(imports: list[Import], modules: list[str]) -> list[str]:
    return [f"{item}: plots draw figures from data frames, with no SQL (rule: plots import no database library and "
            f"only domain of the package, {DOC})"
            for item in imports
            if under(item.importer, "plots")
            and (item.top in DATABASE_LIBRARIES or item.ours and not under(item.imported, "domain"))]


def rule_nothing_imports_cli(imports: list[Import], modules: list[str]) -> list[str]:
    return [f"{item}: nothing imports the CLI (rule: cli is the top, {DOC})"
            for item in imports if under(item.imported, "cli") and not under(item.importer, "cli")]


RULES = {
    "every module has a layer": rule_every_module_has_a_layer,
    "imports point downward": rule_imports_point_downward,
    "domain is dependency-free": rule_domain_is_dependency_free,
    "models never import data-frame libraries": rule_models_never_import_dataframes,
    "metrics are pure": rule_metrics_are_pure,
    "reports write no SQL": rule_reports_write_no_sql,
    "plots read no database": rule_plots_read_no_database,
    "nothing imports cli": rule_nothing_imports_cli,
}


@pytest.fixture(scope="module")
def package() -> tuple[list[Import], list[str]]:
    modules = [module_name(path) for path in sorted(ROOT.rglob("*.py"))]
    return package_imports(), modules


@pytest.mark.parametrize("rule", RULES)
def test_the_package_keeps_the_layer_rule(rule, package):
    imports, modules = package
    problems = RULES[rule](imports, modules)
    assert not problems, "\n".join(problems)


def test_the_reader_sees_every_kind_of_import(package):
    """The checker reads what it claims to: lazy imports inside functions, relative imports, submodules
    named in `from shivx_analytics import x`, and dynamic imports of a literal name."""
    imports, modules = package
    assert len(modules) > 30 and all(layer_of(name) is not None for name in modules)
    pairs = {(item.importer, item.imported) for item in imports}
    assert ("shivx_analytics.cli", "shivx_analytics.notebook_runner") in pairs  # inside _classify()
    assert ("shivx_analytics.cli", "shivx_analytics.db") in pairs  # _LazyModule("shivx_analytics.db")
    assert ("shivx_analytics.reports", "shivx_analytics.reports.base") in pairs  # from .base import Report
    assert ("shivx_analytics.reports.pnl", "shivx_analytics.plots") in pairs  # from shivx_analytics import plots


# --- the checker catches violations (synthetic module texts) ----------------------------------------------------

def check(importer: str, text: str, *, is_package: bool = False) -> list[str]:
    imports = imports_of(importer, text, is_package=is_package)
    return [message for rule in RULES.values() for message in rule(imports, [importer])]


def test_the_checker_catches_an_upward_lazy_import():
    problems = check("shivx_analytics.models.order", "def f():\n    from shivx_analytics.frames import load_orders\n")
    assert problems == [
        "shivx_analytics.models.order (line 2) imports shivx_analytics.frames: an upward import, from the layer "
        "models / types to the layer above it frames / audit_chain / chain_checkpoints / _arrow (rule: imports only point downward, "
        f"{DOC})"]


def test_the_checker_catches_each_named_rule():
    assert any("dependency-free" in p and "imports pandas" in p
               for p in check("shivx_analytics.domain.window", "import pandas as pd\n"))
    assert any("domain is dependency-free" in p and "imports shivx_analytics.types" in p
               for p in check("shivx_analytics.domain.money", "from .. import types\n", is_package=False))
    assert any("data-frame libraries" in p for p in check("shivx_analytics.models.user", "import numpy\n"))
    assert any("metrics never touch a database" in p
               for p in check("shivx_analytics.metrics.pnl", "import sqlalchemy as sa\n"))
    assert any("metrics import only metrics and domain" in p and "imports shivx_analytics.frames" in p
               for p in check("shivx_analytics.metrics.pnl", "if True:\n    from shivx_analytics import frames\n"))
    assert any("reports never write SQL" in p and "imports sqlalchemy" in p
               for p in check("shivx_analytics.reports.pnl", "import sqlalchemy as sa\n"))
    assert not check("shivx_analytics.reports.pnl", "from sqlalchemy.engine import Connection\n")
    assert any("plots import no database library" in p
               for p in check("shivx_analytics.plots", "from shivx_analytics.db import connect\n"))
    assert any("nothing imports the CLI" in p and "shivx_analytics.reports.base (line 1) imports shivx_analytics.cli" in p
               for p in check("shivx_analytics.reports.base", "importlib.import_module('shivx_analytics.cli')\n"))
    assert any("is in no layer" in p for p in check("shivx_analytics.newthing", "import os\n"))


def test_prefixes_follow_a_module_into_a_package():
    """frames.py -> frames/, demo.py -> demo/: the submodules keep the layer, relative imports resolve."""
    assert layer_of("shivx_analytics.frames._query") == layer_of("shivx_analytics.frames")
    assert layer_of("shivx_analytics.demo.orders") == layer_of("shivx_analytics.demo")
    assert layer_of("shivx_analytics.domainx") is None  # a prefix is a whole name, not the start of one
    assert not check("shivx_analytics.frames.loaders", "from ._query import build\nfrom ..db import mask_url\n")
    problems = check("shivx_analytics.frames._query", "from ..reports import base\n")
    assert len(problems) == 1 and "imports shivx_analytics.reports" in problems[0]
