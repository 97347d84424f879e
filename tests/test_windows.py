"""The time window and the as_of rule (docs/windows.md): one parser (domain.window) behind every
entry point, one as_of rule for the four reports, report filters, empty-window notes, the data's
own as_of (data_as_of) for notebooks and `shivx-analytics demo`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import shivx_analytics as sx
from shivx_analytics import metrics
from shivx_analytics.cli import app
from shivx_analytics.demo import generate_demo_data
from shivx_analytics.domain import window
from shivx_analytics.metrics._common import equals, in_window, timestamp

AS_OF = "2025-10-28"
NOWHERE = "sqlite:////nonexistent/never.db"  # validation happens before any connection is made
EXPECTED = "expected an ISO 8601 date or datetime such as 2025-10-28 or 2025-10-28T12:00:00Z"
UTC = timezone.utc
REPORTS = (sx.pnl_report, sx.execution_report, sx.api_usage_report, sx.security_report)
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
runner = CliRunner()


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# The kernel --------------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    (datetime(2025, 10, 28, 12, 30), utc(2025, 10, 28, 12, 30)),  # naive means UTC
    (datetime(2025, 10, 28, 12, 30, tzinfo=timezone(timedelta(hours=2))), utc(2025, 10, 28, 10, 30)),
    (pd.Timestamp("2025-10-28 12:30"), utc(2025, 10, 28, 12, 30)),
    (pd.Timestamp("2025-10-28 12:30", tz="America/New_York"), utc(2025, 10, 28, 16, 30)),
    (pd.Timestamp("2025-10-28 12:30:00.000000001", tz="UTC"), utc(2025, 10, 28, 12, 30, 0, 1)),  # ns round up
    (date(2025, 10, 28), utc(2025, 10, 28)),
    ("2025-10-28", utc(2025, 10, 28)),
    (" 2025-10-28T12:00:00Z ", utc(2025, 10, 28, 12)),
    ("2025-10-28 12:00+02:00", utc(2025, 10, 28, 10)),
    ("2025-10-28T12:00:00.123456", utc(2025, 10, 28, 12, 0, 0, 123456)),
])
def test_instant_reads_each_type_naive_meaning_utc(value, expected):
    parsed = window.instant(value, "since")
    assert parsed == expected and parsed.tzinfo is UTC and type(parsed) is datetime


@pytest.mark.parametrize("value, shown", [
    (1730000000, "1730000000"), (1.73e9, "1730000000.0"), (True, "True"), (None, "None"),
    ("yesterday", "'yesterday'"), ("2025-13-01", "'2025-13-01'"), ("", "''"), (pd.NaT, "NaT"),
    (pd.Timestamp("2025-10-28").to_datetime64(), "datetime64("),
])
def test_numbers_and_garbage_are_refused_naming_the_argument(value, shown):
    with pytest.raises(ValueError) as error:
        window.instant(value, "until")
    assert str(error.value).startswith(f"until: {EXPECTED}, got ")
    assert shown in str(error.value)


def test_an_instant_outside_the_calendar_is_refused_naming_the_argument():
    with pytest.raises(ValueError, match=r"^as_of: '0001-01-01T00:00:00\+05:00' is outside the years 1-9999 UTC"):
        window.instant("0001-01-01T00:00:00+05:00", "as_of")


def test_one_check_refuses_a_reversed_window_and_allows_an_empty_one():
    window.check_window(utc(2025, 10, 1), utc(2025, 10, 1))  # empty: no rows, no error
    window.check_window(None, utc(2025, 10, 1))
    with pytest.raises(ValueError, match=r"^since \(2025-10-02T00:00:00\+00:00\) is after until "
                                         r"\(2025-10-01T00:00:00\+00:00\): the window \[since, until\) would be reversed"):
        window.check_window(utc(2025, 10, 2), utc(2025, 10, 1))


def test_the_as_of_rule():
    now = utc(2026, 1, 15, 9, 30)
    rule = window.report_window(current=now)
    assert (rule.as_of, rule.until, rule.since) == (now, utc(2026, 1, 16), utc(2025, 12, 17))
    rule = window.report_window(as_of="2025-10-28", current=now)
    assert (rule.as_of, rule.until, rule.since) == (utc(2025, 10, 28), utc(2025, 10, 29), utc(2025, 9, 29))
    rule = window.report_window(as_of="2025-10-28T23:59:59.999999Z", current=now)  # the end of as_of's day
    assert rule.until == utc(2025, 10, 29)
    rule = window.report_window(since="2025-10-01", as_of="2025-10-28", lookback=None, current=now)
    assert (rule.since, rule.until) == (utc(2025, 10, 1), utc(2025, 10, 29))
    assert window.report_window(as_of="2025-10-28", lookback=None, current=now).since is None  # P&L: from the data
    assert window.report_window(until="2025-10-10", as_of="2025-10-28", current=now).since == utc(2025, 9, 10)
    assert window.report_window(as_of=now, current=now).as_of == now  # now itself is not the future
    with pytest.raises(ValueError, match=r"^as_of \(2026-01-15T09:30:00\.000001\+00:00\) is in the future"):
        window.report_window(as_of=now + timedelta(microseconds=1), current=now)
    with pytest.raises(ValueError, match="would be reversed"):
        window.report_window(since="2025-10-30", as_of="2025-10-28", current=now)


# Every entry point reads bounds through the kernel -------------------------------------------


ENTRY_POINTS = {
    "load_orders": lambda **kw: sx.load_orders(NOWHERE, **kw),
    "load_positions": lambda **kw: sx.load_positions(NOWHERE, **kw),
    "load_audit_logs": lambda **kw: sx.load_audit_logs(NOWHERE, **kw),
    **{build.__name__: (lambda build: lambda **kw: build(NOWHERE, **kw))(build) for build in REPORTS},
    "metrics.in_window": lambda **kw: in_window(pd.Series([], dtype="datetime64[us, UTC]"), **kw),
    "metrics.timestamp": lambda **kw: [timestamp(v, k) for k, v in kw.items()],
    "aggregates.closed_positions_rows": lambda **kw: sx.aggregates.closed_positions_rows(
        kw.get("since", "2025-10-01"), kw.get("until", "2025-10-02")),
}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize("argument", ["since", "until"])
def test_every_entry_point_refuses_a_number_with_the_kernels_message(entry, argument):
    with pytest.raises(ValueError) as error:
        ENTRY_POINTS[entry](**{argument: 1730000000})
    assert str(error.value) == f"{argument}: {EXPECTED}, got 1730000000"


@pytest.mark.parametrize("build", REPORTS, ids=lambda b: b.__name__)
def test_reports_refuse_a_numeric_or_future_as_of(build):
    with pytest.raises(ValueError, match=f"^as_of: {EXPECTED}, got 1730000000$"):
        build(NOWHERE, as_of=1730000000)
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    with pytest.raises(ValueError, match=r"^as_of \(.*\) is in the future"):
        build(NOWHERE, as_of=tomorrow)


def test_the_demo_generator_and_the_cli_use_the_kernel(tmp_path):
    with pytest.raises(ValueError, match=f"^as_of: {EXPECTED}, got 1730000000$"):
        generate_demo_data(NOWHERE, as_of=1730000000)
    for option in ("--since", "--until", "--as-of"):
        result = runner.invoke(app, ["report", "--url", NOWHERE, option, "1730000000"])
        assert result.exit_code == 2
        assert result.stderr.startswith(f"error: {option}: {EXPECTED}, got '1730000000'")
    future = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    result = runner.invoke(app, ["demo", "--db", str(tmp_path / "d.db"), "--out", str(tmp_path / "r"),
                                 "--as-of", future])
    assert result.exit_code == 2 and "is in the future" in result.stderr
    assert not (tmp_path / "d.db").exists()  # refused before anything was written


# On the demo data, both backends -----------------------------------------------------------


@pytest.fixture
def demo(backend, db_url) -> str:
    generate_demo_data(db_url, seed=0, scale="small", as_of=AS_OF)
    return db_url


@pytest.mark.slow
def test_every_report_follows_the_one_as_of_rule(demo):
    for build in REPORTS:
        report = build(demo, as_of="2025-10-27T15:00:00Z", **({"verify_chain": False} if build is sx.security_report else {}))
        assert report.parameters["as_of"] == pd.Timestamp("2025-10-27T15:00:00Z")
        assert report.parameters["until"] == pd.Timestamp("2025-10-28", tz="UTC"), build.__name__
        if build is not sx.pnl_report:
            assert report.parameters["since"] == pd.Timestamp("2025-09-28", tz="UTC"), build.__name__
    pnl = sx.pnl_report(demo, as_of="2025-10-27T15:00:00Z")
    first_opened = sx.load_positions(demo)["opened_at"].min().floor("D")
    assert pnl.parameters["since"] == first_opened


@pytest.mark.slow
def test_data_as_of_is_the_start_of_the_day_after_the_newest_row(backend, db_url):
    assert sx.data_as_of(db_url) is None  # migrated, no rows
    generate_demo_data(db_url, seed=0, scale="small", as_of="2025-10-28T00:00:00Z")
    newest = sx.aggregates.newest_row_time(db_url)
    assert utc(2025, 10, 27) <= newest < utc(2025, 10, 28)
    assert max(sx.load_orders(db_url)["created_at"].max(), sx.load_audit_logs(db_url)["timestamp"].max(),
               sx.load_positions(db_url)["opened_at"].max()) <= pd.Timestamp(newest)
    assert sx.data_as_of(db_url) == utc(2025, 10, 28)
    engine = sx.connect(db_url)
    try:
        assert sx.data_as_of(engine) == utc(2025, 10, 28)
        with engine.connect() as connection:
            assert sx.data_as_of(connection) == utc(2025, 10, 28)
    finally:
        engine.dispose()
    # a live database (rows today): now, never a future as_of
    assert sx.data_as_of(db_url, current=utc(2025, 10, 27, 23, 58)) == utc(2025, 10, 27, 23, 58)


def hand_filter(frame: pd.DataFrame, **filters) -> pd.DataFrame:
    keep = pd.Series(True, index=frame.index)
    for column, values in filters.items():
        keep &= frame[column].astype(object).isin(values if isinstance(values, list) else [values])
    return frame[keep.to_numpy(dtype=bool)].reset_index(drop=True)


@pytest.mark.slow
def test_report_filters_equal_hand_filtering_the_loaders_rows(demo):
    positions = sx.load_positions(demo, money="decimal")
    user = positions["user_id"].value_counts().index[0]
    strategy = positions["strategy"].dropna().value_counts().index[0]
    tokens = ["SOL", "BONK"]

    pnl = sx.pnl_report(demo, as_of=AS_OF, user_id=user, strategy=strategy, token=tokens)
    mine = hand_filter(positions, user_id=user, strategy=strategy, token=tokens)
    assert len(mine) > 0
    since, until = pnl.parameters["since"], pnl.parameters["until"]
    assert since == mine["opened_at"].min().floor("D")
    expected = metrics.pnl_summary(mine, since=since, until=until)
    for key, value in expected.items():
        assert pnl.summary[key] == value, key
    assert set(pnl.tables["by_strategy"].index) == {strategy}
    assert set(pnl.tables["by_token"].index) <= set(tokens)
    assert {k: pnl.parameters[k] for k in ("user_id", "strategy", "token")} == {
        "user_id": user, "strategy": strategy, "token": tokens}
    assert pnl.parameters["path"] == "pandas"
    # the FIFO ledger holds the executed orders of the strategy's positions only
    orders = sx.load_orders(demo, status="executed", money="decimal")
    ledger = orders[orders["position_id"].isin(hand_filter(sx.load_positions(demo, money="decimal"), user_id=user,
                                                                strategy=strategy, token=tokens)["position_id"])]
    assert pnl.summary["fifo_mismatches"] == 0 and pnl.summary["fifo_problems"] == 0
    assert set(pnl.tables["fifo_ledger"]["token"]) == set(ledger["token"].astype(str))

    execution = sx.execution_report(demo, as_of=AS_OF, user_id=[user], token=tokens)
    window_orders = sx.load_orders(demo, since=execution.parameters["since"], until=execution.parameters["until"],
                                  money="decimal")
    mine = hand_filter(window_orders, user_id=[user], token=tokens)
    assert len(mine) > 0
    assert execution.summary == metrics.execution_summary(mine)
    assert execution.parameters["user_id"] == [user] and execution.parameters["token"] == tokens

    keys = sx.load_api_keys(demo)
    caller = keys["user_id"].value_counts().index[0]  # a user with API keys
    api = sx.api_usage_report(demo, as_of=AS_OF, user_id=caller)
    requests = sx.load_audit_logs(demo, since=api.parameters["since"], until=api.parameters["until"],
                                  event_type="api_request")
    theirs = requests[equals(requests["user_id"], caller)]
    assert api.summary["keys"] == int((keys["user_id"] == caller).sum()) > 0
    assert api.summary["requests"] == len(theirs) > 0
    expected = metrics.api_usage_summary(keys[(keys["user_id"] == caller).to_numpy(dtype=bool)], theirs,
                                         as_of=AS_OF, threshold=0.8, idle_days=30)
    assert {k: api.summary[k] for k in expected} == expected
    assert api.summary["error_share"] == metrics.request_outcomes(theirs).error_share

    security = sx.security_report(demo, as_of=AS_OF, user_id=user, verify_chain=False)
    events = sx.load_audit_logs(demo, since=security.parameters["since"], until=security.parameters["until"])
    theirs = events[equals(events["user_id"], user)]
    failed = theirs[equals(theirs["event_type"], "authentication") & equals(theirs["action"], "login")
                    & (theirs["success"] == False).to_numpy(dtype=bool)]  # noqa: E712
    assert security.summary["failed_logins"] == len(failed)
    assert int(security.tables["event_types"]["events"].sum()) == len(theirs) > 0


@pytest.mark.slow
def test_filtered_reports_are_the_same_whatever_path_is_asked(backend, demo):
    user = sx.load_positions(demo)["user_id"].value_counts().index[0]
    asks = [{"pushdown": False}, {"pushdown": None}]
    if backend == "postgresql":
        asks += [{"pushdown": True}, {"pushdown": True, "use_views": True}]
    for build, filters in [(sx.pnl_report, {"user_id": user, "token": "SOL"}),
                           (sx.execution_report, {"user_id": user, "token": "SOL"}),
                           (sx.api_usage_report, {"user_id": user}), (sx.security_report, {"user_id": user})]:
        texts = set()
        for ask in asks:
            if "use_views" in ask and build not in (sx.pnl_report, sx.api_usage_report):
                continue
            report = build(demo, as_of=AS_OF, **filters, **ask)
            assert report.parameters["path"] == "pandas"
            texts.add(report.to_json())
        assert len(texts) == 1, build.__name__


@pytest.mark.slow
def test_a_window_without_rows_says_so(demo, tmp_path):
    early = "2025-05-01"  # the demo's data starts in late July
    notes = {build.__name__: [n for n in build(demo, as_of=early).notes if n.startswith("No ")] for build in REPORTS}
    assert notes == {
        "pnl_report": ["No positions in [2025-05-01, 2025-05-02): check as_of and the window"],
        "execution_report": ["No orders in [2025-04-02, 2025-05-02): check as_of and the window"],
        "api_usage_report": ["No API requests in [2025-04-02, 2025-05-02): check as_of and the window"],
        "security_report": ["No audit events in [2025-04-02, 2025-05-02): check as_of and the window"],
    }
    assert not [n for n in sx.execution_report(demo, as_of=AS_OF).notes if n.startswith("No ")]
    nobody = "00000000-0000-0000-0000-000000000000"
    assert sx.execution_report(demo, as_of=AS_OF, user_id=nobody).notes[-1] == (
        f"No orders matching user_id={nobody} in [2025-09-29, 2025-10-29): check as_of and the window")
    result = runner.invoke(app, ["report", "execution", "--url", demo, "--as-of", early, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "execution: No orders in [2025-04-02, 2025-05-02): check as_of and the window" in result.stderr


@pytest.mark.slow
def test_the_report_command_takes_filters(demo, tmp_path):
    import json

    user = sx.load_positions(demo)["user_id"].value_counts().index[0]
    result = runner.invoke(app, ["report", "pnl", "execution", "--url", demo, "--as-of", AS_OF, "--format", "json",
                                 "--out", str(tmp_path), "--user", user, "--token", "SOL", "--token", "BONK"])
    assert result.exit_code == 0, result.output
    pnl = json.loads((tmp_path / "pnl.json").read_text())
    assert pnl["parameters"]["user_id"] == [user] and pnl["parameters"]["token"] == ["SOL", "BONK"]
    expected = sx.execution_report(demo, as_of=AS_OF, user_id=[user], token=["SOL", "BONK"]).to_json()
    assert (tmp_path / "execution.json").read_text() == expected
    result = runner.invoke(app, ["report", "security", "--url", demo, "--as-of", AS_OF, "--format", "json",
                                 "--out", str(tmp_path), "--strategy", "momentum"])
    assert result.exit_code == 0 and "note: --strategy does not apply to security" in result.stderr
    result = runner.invoke(app, ["report", "pnl", "--url", demo, "--out", str(tmp_path), "--user", "bob"])
    assert result.exit_code == 2 and "user_id='bob' is not a UUID" in result.stderr


# `shivx-analytics demo` and the notebooks ----------------------------------------------------


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The CLI in a fresh process without any SHIVX_* variable (as a first-time user runs it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIVX_")}
    return subprocess.run([sys.executable, "-m", "shivx_analytics.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)


@pytest.mark.slow
def test_demo_on_a_database_seeded_earlier_reuses_its_date(tmp_path):
    first = cli("demo", "--as-of", "2025-10-28", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    written = (tmp_path / "reports" / "2025-10-28" / "execution.json").read_bytes()
    again = cli("demo", cwd=tmp_path)  # another day: the database holds 2025-10-28's data
    assert again.returncode == 0, again.stderr
    assert "seeded earlier; reporting as of its data's date, 2025-10-28" in again.stderr
    assert (tmp_path / "reports" / "2025-10-28" / "execution.json").read_bytes() == written
    assert not [p for p in (tmp_path / "reports").iterdir() if p.name != "2025-10-28"]
    assert re.search(r"Closed positions\s+[1-9]", again.stdout) and re.search(r"\n  Orders\s+[1-9]", again.stdout)
    asked = cli("demo", "--as-of", "2025-06-01", cwd=tmp_path)
    assert asked.returncode == 0, asked.stderr
    assert "its data ends at 2025-10-28 00:00 UTC; reporting as of 2025-06-01 00:00 UTC as asked" in asked.stderr
    assert "execution: No orders in [2025-05-03, 2025-06-02): check as_of and the window" in asked.stderr


@pytest.mark.slow
def test_notebook_02_opens_on_the_demo_data_without_environment_variables(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    (tmp_path / "notebooks").mkdir()
    notebook = nbformat.read(NOTEBOOKS / "02_pnl.ipynb", as_version=4)
    made = cli("demo", cwd=tmp_path)  # in the repository root: ./shivx_demo.db, as of today
    assert made.returncode == 0, made.stderr
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("SHIVX_")}
    try:
        NotebookClient(notebook, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path / "notebooks")}}).execute()
    finally:
        os.environ.update(saved)
    shown = "\n".join(output.get("data", {}).get("text/plain", "") + output.get("text", "")
                      for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs)
    closed = re.search(r"closed_positions=([\d,]+)", shown)  # the report's repr
    assert closed and int(closed.group(1).replace(",", "")) > 0, shown[:2000]
    today = datetime.now(UTC).date().isoformat()
    html = "\n".join(output.get("data", {}).get("text/html", "")
                     for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs)
    assert f"As of: <b>{today}</b>" in html and "Database: <b>sqlite:///../shivx_demo.db</b>" in html
