"""`shivx-analytics demo | seed | report | notebook run` and --help: what a nightly cron job relies on.

Exit codes: 0 ok, 2 bad arguments, 3 database unreachable, 4 the work failed; errors on stderr
with the password masked; a report file appears whole or not at all.
"""

import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
import typer.main
from _databases import POSTGRES_URL, create_postgres_database, drop_postgres_database
from typer.testing import CliRunner

import shivx_analytics as sx
from shivx_analytics.cli import Exit, _write_reports, app

CLI = [sys.executable, "-m", "shivx_analytics.cli"]
AS_OF = "2025-10-28"
REPORT_STEMS = ("pnl", "execution", "api_usage", "security")
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def run(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The CLI in a fresh process, without the caller's SHIVX_DATABASE_URL unless ``env`` sets it."""
    environment = {k: v for k, v in os.environ.items() if k != "SHIVX_DATABASE_URL"} | (env or {})
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=environment, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory) -> str:
    """A small seeded demo SQLite database (seed 0, as_of 2025-10-28), shared by the module."""
    url = f"sqlite:///{tmp_path_factory.mktemp('cli-demo') / 'demo.db'}"
    sx.migrate(url)
    sx.generate_demo_data(url, seed=0, scale="small", as_of=AS_OF)
    return url


def files_under(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*")) if directory.exists() else []


# -- demo ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_demo_creates_the_database_and_every_report_and_is_safe_to_run_twice(tmp_path):
    started = time.perf_counter()
    first = run("demo", "--as-of", AS_OF, cwd=tmp_path)
    first_seconds = time.perf_counter() - started
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "shivx_demo.db").is_file()
    folder = tmp_path / "reports" / AS_OF
    for stem in REPORT_STEMS:
        for produced in (folder / f"{stem}.html", folder / f"{stem}.json"):
            assert produced.is_file() and produced.stat().st_size > 0, produced
            assert str(produced.relative_to(tmp_path)) in first.stdout
        assert any((folder / f"{stem}_csv").glob("*.csv")), stem
    assert "Realized P&L" in first.stdout and "Fill rate" in first.stdout  # the summary table, in words
    assert not [p for p in folder.iterdir() if p.name.startswith(".")], "staging or temporary files left"
    json_before = {stem: (folder / f"{stem}.json").read_bytes() for stem in REPORT_STEMS}

    started = time.perf_counter()
    second = run("demo", "--as-of", AS_OF, cwd=tmp_path)
    second_seconds = time.perf_counter() - started
    assert second.returncode == 0, second.stderr
    assert {stem: (folder / f"{stem}.json").read_bytes() for stem in REPORT_STEMS} == json_before
    print(f"\ndemo: first run {first_seconds:.1f} s, rerun {second_seconds:.1f} s")


# -- seed + report on both backends -----------------------------------------------------------

@pytest.mark.slow
def test_seed_then_report_gives_the_same_json_and_csv_on_sqlite_and_postgresql(tmp_path, migrated_templates):
    if not POSTGRES_URL:
        pytest.skip("SHIVX_TEST_POSTGRES_URL not set")
    sqlite_file = tmp_path / "seeded.db"
    sqlite_file.write_bytes(Path(migrated_templates["sqlite"]).read_bytes())
    postgres_url = create_postgres_database(template=migrated_templates["postgresql"])
    try:
        targets = {"sqlite": f"sqlite:///{sqlite_file}", "postgresql": postgres_url}
        with ThreadPoolExecutor(max_workers=2) as pool:
            outcomes = dict(zip(targets, pool.map(lambda item: seed_and_report(item[1], tmp_path / item[0]),
                                                  targets.items())))
    finally:
        drop_postgres_database(postgres_url)
    for backend, (seeded, reported) in outcomes.items():
        assert seeded.returncode == 0, (backend, seeded.stderr)
        assert reported.returncode == 0, (backend, reported.stderr)
    sqlite_out, postgres_out = tmp_path / "sqlite", tmp_path / "postgresql"
    assert files_under(sqlite_out) == files_under(postgres_out)
    for stem in REPORT_STEMS:
        # Only the source differs: parameters.database names each database (password masked).
        assert without_source(sqlite_out / f"{stem}.json") == without_source(postgres_out / f"{stem}.json"), stem
        for csv in (sqlite_out / f"{stem}_csv").glob("*.csv"):
            assert csv.read_bytes() == (postgres_out / f"{stem}_csv" / csv.name).read_bytes(), csv.name


def seed_and_report(url: str, out: Path) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    seeded = run("seed", "--url", url, "--as-of", AS_OF)
    reported = run("report", "all", "--url", url, "--as-of", AS_OF, "--out", str(out), "--format", "json,csv")
    return seeded, reported


def without_source(path: Path) -> bytes:
    text = path.read_bytes()
    replaced, count = re.subn(rb'\n    "database": "[^"\n]*"', b'\n    "database": "<source>"', text, count=1)
    assert count == 1, f"{path.name}: no parameters.database line"
    return replaced


# -- report: exit codes and atomic files --------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("args, complaint", [
    (["bogus"], "unknown report"),
    (["pnl", "--format", "html,xml"], "unknown format"),
    (["pnl", "--since", "last tuesday"], "--since"),
    (["pnl", "--starting-capital", "lots"], "--starting-capital"),
], ids=["unknown-report", "unknown-format", "unparseable-since", "bad-starting-capital"])
def test_report_with_bad_arguments_exits_2_with_a_message_on_stderr(tmp_path, args, complaint):
    out = tmp_path / "out"
    result = run("report", *args, "--url", f"sqlite:///{tmp_path / 'none.db'}", "--out", str(out))
    assert result.returncode == Exit.BAD_ARGUMENTS, (result.returncode, result.stderr)
    assert complaint in result.stderr
    assert not out.exists()


@pytest.mark.slow
def test_report_on_an_unreachable_database_exits_3_masks_the_password_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    result = run("report", "all", "--url", "postgresql://u:s3cret@127.0.0.1:1/x", "--out", str(out))
    assert result.returncode == Exit.DATABASE_UNREACHABLE, (result.returncode, result.stderr)
    assert "s3cret" not in result.stderr + result.stdout
    assert "***" in result.stderr
    assert files_under(out) == []


@pytest.mark.slow
def test_report_into_an_unwritable_out_exits_4_with_a_clear_message_and_writes_nothing(tmp_path, demo_url):
    blocker = tmp_path / "a-regular-file"
    blocker.write_text("not a directory\n")
    result = run("report", "pnl", "--url", demo_url, "--as-of", AS_OF, "--format", "json",
                 "--out", str(blocker / "reports"))
    assert result.returncode == Exit.FAILED, (result.returncode, result.stderr)
    assert "cannot write reports to" in result.stderr and "--out" in result.stderr
    assert blocker.read_text() == "not a directory\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-regular-file"]


@pytest.mark.slow
def test_a_failure_while_writing_leaves_the_previous_reports_untouched_and_no_staging_folder(
        tmp_path, demo_url, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "pnl.json").write_text("yesterday's report\n")
    real_pnl_report = sx.pnl_report

    def disk_full(path=None, **_):
        raise OSError("disk full")

    def pnl_report_that_cannot_render(engine, **kwargs):
        report = real_pnl_report(engine, **kwargs)
        report.to_html = disk_full
        return report

    monkeypatch.setattr(sx, "pnl_report", pnl_report_that_cannot_render)
    window = {"since": None, "until": None, "as_of": AS_OF}
    with pytest.raises(OSError, match="disk full"):  # execution's files were already staged
        _write_reports(demo_url, ("execution", "pnl"), ("html", "json", "csv"), out, window, None)
    assert files_under(out) == ["pnl.json"]
    assert (out / "pnl.json").read_text() == "yesterday's report\n"


# -- --help everywhere ---------------------------------------------------------------------------

def command_paths() -> list[list[str]]:
    """Every command and subcommand of the app, read from the click group (new ones included)."""
    def walk(command, path):
        yield path
        for name, child in sorted(getattr(command, "commands", {}).items()):
            yield from walk(child, [*path, name])

    return list(walk(typer.main.get_command(app), []))


@pytest.mark.parametrize("path", command_paths(), ids=lambda path: " ".join(path) or "shivx-analytics")
def test_every_command_answers_help_with_exit_0(path):
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_help_covers_the_documented_commands():
    assert {" ".join(p) for p in command_paths()} >= {
        "", "demo", "seed", "report", "health", "db", "db upgrade", "db downgrade", "db current", "db check",
        "notebook", "notebook run"}


# -- progress bars ----------------------------------------------------------------------------

@pytest.mark.slow
def test_seed_without_a_terminal_prints_no_progress_bar(tmp_path):
    result = run("seed", "--url", f"sqlite:///{tmp_path / 'quiet.db'}", "--scale", "50", "--as-of", AS_OF)
    assert result.returncode == 0, result.stderr
    assert "%|" not in result.stderr and "rows/s" not in result.stderr


@pytest.mark.slow
def test_seed_with_progress_prints_a_bar_on_stderr_only(tmp_path):
    result = run("seed", "--url", f"sqlite:///{tmp_path / 'loud.db'}", "--scale", "50", "--as-of", AS_OF, "--progress")
    assert result.returncode == 0, result.stderr
    assert "%|" in result.stderr
    assert "%|" not in result.stdout


# -- notebook run ---------------------------------------------------------------------------------

class PageScan(HTMLParser):
    """Classes, img sources, src/href references and visible text of an HTML page."""

    def __init__(self):
        super().__init__()
        self.classes: list[set[str]] = []
        self.images: list[str] = []
        self.references: list[str] = []
        self.text: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.classes.append(set((attributes.get("class") or "").split()))
        if tag == "img":
            self.images.append(attributes.get("src") or "")
        self.references += [value for key, value in attrs if key in {"src", "href"} and value]
        if tag in {"style", "script"}:
            self._skipping += 1

    def handle_endtag(self, tag):
        if tag in {"style", "script"}:
            self._skipping -= 1

    def handle_data(self, data):
        if not self._skipping:
            self.text.append(data)

    def count(self, css_class: str) -> int:
        return sum(css_class in classes for classes in self.classes)


def scan(path: Path) -> PageScan:
    page = PageScan()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.mark.slow
def test_notebook_run_exports_self_contained_html_without_code(tmp_path, demo_url):
    out = tmp_path / "quickstart.html"
    started = time.perf_counter()
    result = run("notebook", "run", str(NOTEBOOKS / "01_quickstart.ipynb"), "-p", f"as_of={AS_OF}", "--out", str(out),
                 env={"SHIVX_DATABASE_URL": demo_url})
    print(f"\nnotebook run 01_quickstart: {time.perf_counter() - started:.1f} s")
    assert result.returncode == 0, result.stderr
    page = scan(out)
    visible = " ".join(page.text)
    assert page.count("jp-MarkdownCell") > 0 and page.count("jp-CodeCell") > 0
    assert page.count("jp-InputArea") == page.count("jp-MarkdownCell"), "a code cell's input is shown"
    assert page.count("jp-InputPrompt") == page.count("jp-OutputPrompt") == page.count("highlight") == 0
    assert "In [" not in visible and "In\xa0[" not in visible
    assert all(src.startswith("data:image/png;base64,") for src in page.images), page.images
    remote = [r for r in page.references if re.match(r"(https?:)?//", r)]
    assert remote == [], remote
    assert len(visible) > 500


@pytest.mark.slow
def test_notebook_run_of_a_missing_notebook_exits_2(tmp_path):
    result = run("notebook", "run", str(tmp_path / "nope.ipynb"), "--out", str(tmp_path / "nope.html"))
    assert result.returncode == Exit.BAD_ARGUMENTS, (result.returncode, result.stderr)
    assert "does not exist" in result.stderr
    assert not (tmp_path / "nope.html").exists()


@pytest.mark.slow
def test_notebook_run_with_a_parameter_without_equals_exits_2(tmp_path):
    result = run("notebook", "run", str(NOTEBOOKS / "01_quickstart.ipynb"), "-p", "as_of",
                 "--out", str(tmp_path / "x.html"))
    assert result.returncode == Exit.BAD_ARGUMENTS, (result.returncode, result.stderr)
    assert "key=value" in result.stderr
    assert files_under(tmp_path) == []


@pytest.mark.slow
def test_notebook_run_of_a_failing_cell_exits_4_and_writes_no_html(tmp_path):
    notebook = nbformat.v4.new_notebook(metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"}})
    parameters = nbformat.v4.new_code_cell("threshold = 1")
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [parameters, nbformat.v4.new_code_cell('raise RuntimeError("boom")')]
    source = tmp_path / "failing.ipynb"
    nbformat.write(notebook, source)
    out = tmp_path / "html"
    result = run("notebook", "run", str(source), "-p", "threshold=2", "--out", str(out / "failing.html"))
    assert result.returncode == Exit.FAILED, (result.returncode, result.stderr)
    assert "RuntimeError" in result.stderr and "boom" in result.stderr
    assert files_under(out) == []


# -- a report set is swapped in whole; concurrent first demo runs ----------------------------------

@pytest.mark.slow
def test_a_reader_never_sees_a_mix_of_two_report_sets_and_other_files_stay(tmp_path, demo_url):
    """Readers hold the directory open (as a browser or a sync job lists then reads it): every
    snapshot they read has pnl and execution from the same run (as_of tells which), while
    `report` rewrites the set again and again; files that are not part of the set stay."""
    import json as json_module
    import threading

    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("kept\n")
    days = ["2025-10-26", "2025-10-27", "2025-10-28"]
    done, snapshots, mixes = threading.Event(), [], []

    def read_snapshots():
        while not done.is_set():
            try:
                folder = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
            except FileNotFoundError:  # between the two renames of the fallback swap
                continue
            try:
                seen = {}
                for stem in ("pnl", "execution"):
                    with os.fdopen(os.open(f"{stem}.json", os.O_RDONLY, dir_fd=folder)) as handle:
                        seen[stem] = json_module.load(handle)["parameters"]["as_of"]
                snapshots.append(seen)
                if len(set(seen.values())) != 1:
                    mixes.append(seen)
            except FileNotFoundError:  # the old set's directory, being removed after the swap
                pass
            finally:
                os.close(folder)

    window = {"since": None, "until": None}
    _write_reports(demo_url, ("pnl", "execution"), ("json",), out, window | {"as_of": days[0]}, None)
    reader = threading.Thread(target=read_snapshots)
    reader.start()
    try:
        for day in days * 3:
            _write_reports(demo_url, ("pnl", "execution"), ("json",), out, window | {"as_of": day}, None)
    finally:
        done.set()
        reader.join()
    assert len(snapshots) > 10 and not mixes, (len(snapshots), mixes[:3])
    assert files_under(out) == ["execution.json", "notes.txt", "pnl.json"]
    assert (out / "notes.txt").read_text() == "kept\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging left behind"


@pytest.mark.slow
def test_three_concurrent_first_demo_runs_on_one_new_file_all_succeed(tmp_path):
    """Three `demo` runs started together on a file that does not exist yet: they take turns
    (a lock next to the database), one migrates and seeds, the others find it seeded; all exit 0
    and the database holds one demo's rows."""
    command = [*CLI, "demo", "--db", str(tmp_path / "demo.db"), "--out", str(tmp_path / "reports"), "--as-of", AS_OF]
    environment = {k: v for k, v in os.environ.items() if k != "SHIVX_DATABASE_URL"}
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
            for _ in range(3)]
    outcomes = [(process.wait(timeout=600), process.stderr.read()) for process in runs]
    for process in runs:
        process.stdout.close()
        process.stderr.close()
    assert [code for code, _ in outcomes] == [0, 0, 0], outcomes
    counts = sx.load_orders(f"sqlite:///{tmp_path / 'demo.db'}")
    assert len(counts) == sx.demo.SCALES["small"]
    folder = tmp_path / "reports" / AS_OF
    assert all((folder / f"{stem}.json").is_file() for stem in REPORT_STEMS)
