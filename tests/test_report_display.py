"""The four reports as a person reads them, as pandas sees them, and as a spreadsheet opens them.

Built once per backend on the small demo (seed 0, as_of 2025-10-28) with hostile text planted
in the data: a strategy "=HYPERLINK(...)" and a locked user's name "@SUM(1)" (CSV formula
injection, issue 13.12), which must reach the report tables.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import json
import re
from decimal import Decimal

import matplotlib
import pandas as pd
import pytest
import sqlalchemy as sa
from _databases import BACKENDS, copy_migrated_database, drop_postgres_database

from shivx_analytics.db import create_engine
from shivx_analytics.demo import generate_demo_data
from shivx_analytics.reports import api_usage_report, execution_report, pnl_report, security_report
from shivx_analytics.reports.base import Report, csv_safe
from shivx_analytics.reports.display import format_value, label

AS_OF = "2025-10-28T00:00:00Z"
BUILDERS = (pnl_report, execution_report, api_usage_report, security_report)
FORMULA = '=HYPERLINK("http://evil.example/x","click")'
USERNAME = "@SUM(1)"
# What must never reach a reader (outside the exact-values appendix).
RAW = re.compile(r"\b(None|NaN|nan|NaT|inf)\b|<NA>|0E-8|\d\.\d+e[+-]\d\d")
LONG_USD = re.compile(r"\$-?[\d,]+\.\d{3,}")
NUMBER = re.compile(r"(\d[\d,]*)\.(\d+)")


def _overlong_figures(text: str) -> list[str]:
    """Figures shown with more than 2 decimals and more than 6 significant digits (an exact
    8-decimal amount such as 4320.09802050); a small price such as 0.00000769 reads fine."""
    found = []
    for match in NUMBER.finditer(text):
        whole, decimals = match.group(1).replace(",", "").lstrip("0"), match.group(2)
        significant = len(whole) + len(decimals) if whole else len(decimals.lstrip("0"))
        if len(decimals) > 2 and significant > 6:
            found.append(match.group())
    return found


@pytest.fixture(scope="module", params=BACKENDS)
def reports(request, migrated_templates, tmp_path_factory) -> dict[str, Report]:
    url = copy_migrated_database(request.param, migrated_templates, tmp_path_factory.mktemp("display"))
    try:
        generate_demo_data(url, seed=0, scale="small", as_of=AS_OF)
        engine = create_engine(url)
        try:
            with engine.begin() as connection:
                planted = connection.execute(sa.text(
                    "UPDATE positions SET strategy = :formula WHERE strategy = 'Manual'"), {"formula": FORMULA})
                assert planted.rowcount > 0
                locked = connection.execute(sa.text(
                    "UPDATE users SET username = :name WHERE user_id = (SELECT user_id FROM users "
                    "WHERE locked_until IS NOT NULL ORDER BY locked_until DESC LIMIT 1)"), {"name": USERNAME})
                assert locked.rowcount == 1
        finally:
            engine.dispose()
        yield {build.__name__.removesuffix("_report"): build(url, as_of=AS_OF) for build in BUILDERS}
    finally:
        if request.param == "postgresql":
            drop_postgres_database(url)


def _without_appendix(page: str) -> str:
    """The page without the exact-values appendix, tooltips (title=) and embedded images."""
    page = re.sub(r"<details class='exact'.*?</details>", "", page, flags=re.S)
    page = re.sub(r'\stitle="[^"]*"', "", page)
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)


def _visible_text(page: str) -> str:
    page = re.sub(r"<style>.*?</style>", "", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


@pytest.mark.slow
@pytest.mark.parametrize("view", ["to_html", "_repr_html_"])
def test_every_page_reads_as_words_and_rounded_figures(reports, view):
    for name, report in reports.items():
        page = getattr(report, view)()
        shown = _visible_text(_without_appendix(page))
        assert not RAW.search(shown), f"{name}.{view}: {RAW.search(shown).group()!r} near " \
            f"{shown[max(RAW.search(shown).start() - 80, 0):RAW.search(shown).end() + 40]!r}"
        assert not LONG_USD.search(_without_appendix(page)), f"{name}.{view}: {LONG_USD.search(page).group()}"
        assert _overlong_figures(shown) == [], f"{name}.{view}"
        # snake_case keys of the summary and the table headings never show; their labels do.
        for key in report.summary:
            assert not re.search(rf"<(th|div class='label')[^>]*>{key}<", page), f"{name}.{view}: {key}"
            assert html.escape(label(key)) in page
        for table in report.exact_tables:
            assert f"{html.escape(label(table))} (" in page
            for column in report.exact_tables[table].columns:
                if "_" in str(column):
                    assert not re.search(rf"<th[^>]*>{column}<", page), f"{name}.{view}: {table}.{column}"
        assert re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-", shown) is None, f"{name}.{view}: a full UUID is shown"
        # The exact figures are there, in the appendix only.
        appendix = re.search(r"<details class='exact'.*?</details>", page, flags=re.S).group()
        for value in report.summary.values():
            if isinstance(value, Decimal):
                assert format(value, "f") in appendix
    pnl = reports["pnl"]
    page = getattr(pnl, view)()
    for words in ("Realized P&amp;L", "Win rate", "Max drawdown (%)", "Sharpe ratio", "FIFO reconciliation"):
        assert words in page
    realized = pnl.summary["realized_pnl"]
    assert format_value(realized, "realized_pnl").text in page
    assert f"{pnl.summary['win_rate'] * 100:.2f} %" in page


@pytest.mark.slow
def test_long_tables_are_trimmed_with_a_line_saying_where_the_rest_is(reports):
    pnl = reports["pnl"]
    daily = len(pnl.exact_tables["daily"])
    assert daily > 20
    page = pnl.to_html()
    assert f"Showing the latest 20 of {daily} rows; the full table is in the CSV export" in page
    assert f"Showing the latest 10 of {daily} rows" in pnl._repr_html_()
    last_day = pnl.exact_tables["daily"].index[-1].strftime("%Y-%m-%d")
    first_day = pnl.exact_tables["daily"].index[0].strftime("%Y-%m-%d")
    section = page[page.index('id="table-daily"'):page.index('id="table-weekly"')]
    assert last_day in section and first_day not in section
    assert section.count("<tr>") == 21  # header + 20 rows
    # The table of contents links every table and figure.
    for name in (*pnl.exact_tables, *pnl.figures):
        assert re.search(rf'href="#(table|figure)-{name.replace("_", "-")}"', page), name
    assert page.count("<img ") == len(pnl.figures)


@pytest.mark.slow
def test_report_tables_work_with_pandas(reports):
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    for name, report in reports.items():
        assert report.tables.keys() == report.exact_tables.keys()
        for table_name, table in report.tables.items():
            where = f"{name}.{table_name}"
            exact = report.exact_tables[table_name]
            assert table.shape == exact.shape and list(table.columns) == list(exact.columns), where
            numeric = table.select_dtypes("number")
            for column in exact.columns:
                values = exact[column]
                if isinstance(values.dtype, pd.ArrowDtype) or values.dtype == object and any(
                        isinstance(v, Decimal) for v in values):
                    assert table[column].dtype == "float64", f"{where}.{column}: {table[column].dtype}"
                    assert column in numeric.columns
                else:  # timestamps, categoricals, integers and text as built
                    assert table[column].dtype == values.dtype, f"{where}.{column}"
            numeric.cumsum()
            (numeric * 2).sum()
            table.describe()
            for column in numeric.columns:
                numeric[column].cumsum()
            if len(numeric) and len(numeric.columns) and numeric.notna().any().any():
                axes = numeric.plot()
                plt.close(axes.figure)
    daily = reports["pnl"].tables["daily"]
    cumulative = daily.realized_pnl.cumsum()
    assert cumulative.iloc[-1] == pytest.approx(float(reports["pnl"].summary["realized_pnl"]), abs=1e-6)
    assert (daily["equity"] * 2).dtype == "float64"
    # The exact tables keep every digit, and so do the exports.
    assert sum(reports["pnl"].exact_tables["daily"]["realized_pnl"], Decimal(0)) == reports["pnl"].summary["realized_pnl"]
    exported = json.loads(reports["pnl"].to_json())["tables"]["daily"]
    assert [Decimal(r["realized_pnl"]) for r in exported] == list(reports["pnl"].exact_tables["daily"]["realized_pnl"])


def test_report_tables_is_a_view_of_the_exact_tables():
    exact = pd.DataFrame({"pnl": pd.Series([Decimal("1.23456789"), None], dtype=object), "n": [1, 2]})
    report = Report("r", "R", {"pnl": Decimal("1.23456789")}, tables={"t": exact})
    assert report.tables["t"]["pnl"].dtype == "float64" and report.tables["t"]["pnl"].isna().iloc[1]
    assert report.exact_tables["t"] is exact
    report.tables["u"] = exact.head(1)
    assert list(report.exact_tables) == ["t", "u"] and report.tables["u"]["pnl"].iloc[0] == 1.23456789
    del report.tables["u"]
    assert list(report.tables) == ["t"]


@pytest.mark.slow
def test_csv_formula_injection_is_neutralised_and_json_stays_exact(reports, tmp_path):
    pnl, security = reports["pnl"], reports["security"]
    assert FORMULA in pnl.exact_tables["by_strategy"].index
    assert USERNAME in list(security.exact_tables["locked_users"]["username"])
    for report in reports.values():
        report.to_csv(tmp_path / report.name)
    with open(tmp_path / "pnl" / "pnl_by_strategy.csv", newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    strategies = [r["strategy"] for r in rows]
    assert "'" + FORMULA in strategies and FORMULA not in strategies
    negative = [r["realized"] for r in rows if r["realized"].startswith("-")]
    assert negative and all(Decimal(v) < 0 for v in negative)  # negative money stays a plain number
    with open(tmp_path / "security" / "security_locked_users.csv", newline="", encoding="utf-8") as stream:
        assert "'" + USERNAME in [r["username"] for r in csv.DictReader(stream)]
    # No cell of any export starts a formula, except plain numbers.
    for path in tmp_path.rglob("*.csv"):
        with open(path, newline="", encoding="utf-8") as stream:
            for row in csv.reader(stream):
                for cell in row:
                    assert not cell.startswith(("=", "+", "@", "\t", "\r")), f"{path.name}: {cell!r}"
                    assert not cell.startswith("-") or re.fullmatch(r"-\d+(\.\d+)?(e-?\d+)?", cell), \
                        f"{path.name}: {cell!r}"
    # JSON keeps the text exactly; the HTML shows it as text, escaped.
    assert FORMULA in [r["strategy"] for r in json.loads(pnl.to_json())["tables"]["by_strategy"]]
    assert USERNAME in [r["username"] for r in json.loads(security.to_json())["tables"]["locked_users"]]
    assert html.escape(FORMULA) in pnl.to_html() and html.escape(USERNAME) in security.to_html()


@pytest.mark.parametrize(("value", "expected"), [
    ("=1+2", "'=1+2"), ("+1 call", "'+1 call"), ("@SUM(1)", "'@SUM(1)"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("-", "'-"), ("-2+3", "'-2+3"), ("-12.5", "-12.5"), ("+3", "+3"), ("-1.5e-07", "-1.5e-07"),
    ("SOL", "SOL"), ("a=b", "a=b"), (-4.5, -4.5), ("", ""),
])
def test_csv_safe(value, expected):
    assert csv_safe(value) == expected


@pytest.mark.parametrize(("key", "expected"), [
    ("realized_pnl", "Realized P&L"), ("win_rate", "Win rate"), ("max_drawdown_pct", "Max drawdown (%)"),
    ("sharpe", "Sharpe ratio"), ("total_pnl", "Total P&L"), ("user_id", "User ID"),
    ("slippage_bps_p95", "P95 slippage (bps)"), ("latency_seconds_mean", "Mean latency"),
    ("notional_usd", "Notional (USD)"), ("fifo_reconciliation", "FIFO reconciliation"),
    ("return_pct", "Return (%)"), ("cagr_pct", "CAGR (%)"), ("calmar", "Calmar ratio"),
    ("best_month", "Best month"), ("drawdown_periods", "Drawdown periods"), ("monthly_heatmap", "Monthly heatmap"),
    ("failed_logins_by_ip", "Failed logins by IP"), ("Mon", "Mon"), ("volatility", "Volatility"),
])
def test_labels_in_words_for_keys_seen_and_unseen(key, expected):
    assert label(key) == expected


@pytest.mark.parametrize(("value", "key", "expected"), [
    (Decimal("-4320.09802050"), "unrealized_pnl", "-$4,320.10"), (Decimal("1234.565"), "x", "$1,234.57"),
    (Decimal("0E-8"), "drawdown", "$0.00"), (Decimal("-0.004"), "pnl", "$0.00"), (Decimal("-0.005"), "pnl", "-$0.01"),
    (2025, "year", "2025"), (12345, "chain_seq", "12345"), (Decimal("12.3456"), "return_pct", "12.35 %"),
    (0.5249433, "win_rate", "52.49 %"), (0.0099, "over_tolerance_rate", "0.99 %"), (1.2333, "utilization", "123.33 %"),
    (12.3456, "max_drawdown_pct", "12.35 %"), (1.083107, "profit_factor", "1.08"), (0.9976, "sharpe", "0.998"),
    (35340.0, "avg_holding_seconds", "9 h 49 min"), (125.0, "latency_seconds_p95", "2 min 5 s"),
    (2.66, "latency_seconds_median", "2.7 s"), (pd.Timedelta(hours=9, minutes=49), "held", "9 h 49 min"),
    (1234567, "requests", "1,234,567"), (True, "audit_chain_ok", "Yes"), (False, "idle", "No"),
    (None, "profit_factor", "\u2014"), (float("nan"), "sharpe", "\u2014"), (pd.NA, "x", "\u2014"),
    (pd.NaT, "x", "\u2014"), (pd.Timestamp("2025-10-28", tz="UTC"), "as_of", "2025-10-28"),
    (pd.Timestamp("2025-10-28 14:03:59.123456", tz="UTC"), "at", "2025-10-28 14:03 UTC"),
    (dt.datetime(2025, 10, 28, 16, 3, tzinfo=dt.timezone(dt.timedelta(hours=2))), "at", "2025-10-28 14:03 UTC"),
    ("11db0a70-f5b0-4299-9714-425a641d8f78", "user_id", "11db0a70"), ("SOL", "token", "SOL"),
    (Decimal("0.00565690"), "stop_loss", "0.005657"), (Decimal("161287.00000000"), "open_tokens", "161,287"),
])
def test_values_read_by_kind(value, key, expected):
    assert format_value(value, key).text == expected


def test_money_keeps_its_exact_value_as_tooltip():
    cell = format_value(Decimal("-4320.09802050"), "unrealized_pnl")
    assert cell.negative and 'title="-4320.09802050 USD"' in cell.html()


def test_view_shows_one_table_for_reading():
    table = pd.DataFrame({"realized_pnl": [Decimal("-4320.09802050"), None], "win_rate": [0.5249, 0.1]}, index=pd.Index(["SOL", "=cmd"], name="token"))
    report = Report("r", "R", {}, tables={"by_token": table})
    view = report.view("by_token", rows=1)
    page = view._repr_html_()
    assert "<h4>By token</h4>" in page and "-$4,320.10" in page and "52.49 %" in page
    assert "Showing the first 1 of 2 rows" in page and "=cmd" not in page
    assert repr(view).splitlines()[0] == "By token" and "Realized P&L" in repr(view) and "-$4,320.10" in repr(view)
    assert "(showing 1 of 2 rows)" in repr(view)
    with pytest.raises(KeyError, match="has no table 'daily'; its tables: by_token"):
        report.view("daily")
    with pytest.raises(ValueError, match="rows must be a positive whole number"):
        report.view("by_token", rows=0)


@pytest.mark.slow
@pytest.mark.parametrize("view", ["to_html", "_repr_html_"])
def test_user_ids_show_the_username_beside_the_short_id(reports, view):
    for name, table in (("pnl", "by_user"), ("security", "locked_users"), ("security", "failed_logins_by_user")):
        report = reports[name]
        user_id = str(report.exact_tables[table].reset_index()["user_id"].dropna().iloc[0])
        username = report.usernames[user_id]
        shown = _visible_text(getattr(report, view)())
        assert f"{username} ({user_id[:8]})" in shown, f"{name}.{table}: no username beside {user_id[:8]}"
    assert USERNAME in report.usernames.values()  # the planted name, shown as text (HTML-escaped)
