"""Every loader and the four reports against their floors, both backends (issue 12, "How to show it").

    python benchmarks/report_benchmark.py --orders 100000 --keep
    python benchmarks/report_benchmark.py --orders 1000000 --backend sqlite --skip read_sql
    python benchmarks/report_benchmark.py --only 'postgresql/load_audit_logs/*'      # one row again
    python benchmarks/report_benchmark.py --only sqlite/security_report --profile /tmp/security.prof

Data: the demo (seed 0, as_of 2025-10-28, ``--orders`` orders and about 2.5 audit rows per
order), seeded once per size and backend with ``python -m shivx_analytics.cli seed`` and reused
while its order count matches: the SQLite file ``<--workdir>/demo_<orders>.db`` and the
PostgreSQL database ``shivx_bench_<orders>`` on the server of ``--postgres-url``, created by this
script and dropped at the end unless ``--keep`` (no other database is touched; the name is the
one benchmarks/load_benchmark.py uses for the same data).

Rows (``<backend>/<what>/<money>``; ``--only`` takes comma-separated fnmatch patterns of them):

  load_positions ... load_users   sx.load_X(url, money=float|decimal): the whole table
  pnl_report ... security_report  sx.X_report(url, as_of=2025-10-28, since=<whole history>) on
                                  the default path (``path`` column: pandas, pushdown or views);
                                  the security report verifies the whole audit chain, as by default

Contenders, each measured in a fresh process, interleaved (ours, floor, read_sql, ours, floor,
...), ``--repeat`` times (read_sql ``--read-sql-repeat`` times), median shown:

  ours      the call above
  floor     the raw read of the same tables, every column (``SELECT *``), nothing converted.
            SQLite: ADBC's driver into one Arrow table (``--sqlite-floor duckdb``: DuckDB's
            sqlite scanner). PostgreSQL: ``COPY (SELECT * FROM t) TO STDOUT (FORMAT binary)``
            through psycopg, drained to the end. A report's floor reads every table it needs.
  read_sql  loaders only: ``pd.read_sql(sa.select(Model.__table__), engine)``, what a user would
            write without this package

Each child times the work alone (imports and connection set-up excluded) and reports its peak
RSS (VmHWM of /proc/self/status: the whole process, interpreter and libraries included; the
RSS after the imports is in the JSON, ``base_mb``) and the size of what it produced: a loader's
DataFrame (``memory_usage(deep=True)``), a report's input as the floor read it (Arrow bytes;
COPY: bytes drained). The issue's targets: loaders <= 1.5x their floor, >= 10x faster than
read_sql, peak RSS < 2x the frame; the four reports in total <= 1.5x the raw read of their tables.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve()
AS_OF = "2025-10-28T00:00:00Z"
WHOLE_HISTORY = "2024-10-28T00:00:00Z"  # the demo spans the 90 days before as_of: 365 days hold all of it
BACKENDS = ("sqlite", "postgresql")
MODES = ("float", "decimal")
CONTENDERS = ("ours", "floor", "read_sql")
LOADERS = {  # loader -> (table, model)
    "load_positions": ("positions", "Position"),
    "load_orders": ("orders", "Order"),
    "load_audit_logs": ("security_audit_logs", "SecurityAuditLog"),
    "load_api_keys": ("api_keys", "APIKey"),
    "load_users": ("users", "User"),
}
REPORTS = {  # report -> the tables it reads (its floor reads them whole)
    "pnl_report": ("positions", "orders", "users"),
    "execution_report": ("orders", "users"),
    "api_usage_report": ("security_audit_logs", "api_keys", "users"),
    "security_report": ("security_audit_logs", "users"),
}


@dataclass(frozen=True)
class Row:
    backend: str
    what: str  # a loader or a report
    money: str  # float, decimal, or "-" for a report

    @property
    def key(self) -> str:
        return f"{self.backend}/{self.what}/{self.money}"

    @property
    def is_report(self) -> bool:
        return self.what in REPORTS

    @property
    def tables(self) -> tuple[str, ...]:
        return REPORTS[self.what] if self.is_report else (LOADERS[self.what][0],)

    def contenders(self, skip: Iterable[str] = ()) -> list[str]:
        names = ["ours", "floor"] + ([] if self.is_report else ["read_sql"])
        return [name for name in names if name not in set(skip)]


@dataclass
class Result:
    row: Row
    runs: dict[str, list[dict]] = field(default_factory=dict)  # contender -> one dict per run

    def median(self, contender: str, key: str = "seconds") -> float | None:
        values = [run[key] for run in self.runs.get(contender, []) if run.get(key) is not None]
        return statistics.median(values) if values else None

    def peak(self, contender: str) -> float | None:
        values = [run["peak_mb"] for run in self.runs.get(contender, []) if run.get("peak_mb") is not None]
        return max(values) if values else None

    def error(self) -> str | None:
        return next((run["error"] for runs in self.runs.values() for run in runs if run.get("error")), None)

    def path(self) -> str:
        paths = sorted({run["path"] for run in self.runs.get("ours", []) if run.get("path")})
        return ",".join(paths) or "-"


def all_rows(backends: Sequence[str]) -> list[Row]:
    rows = [Row(b, loader, mode) for b in backends for loader in LOADERS for mode in MODES]
    rows += [Row(b, report, "-") for b in backends for report in REPORTS]
    return rows


def select_rows(rows: list[Row], only: str | None) -> list[Row]:
    """The rows whose key matches one of the comma-separated fnmatch patterns (all without any);
    a pattern without a wildcard also matches as a prefix (``sqlite/load_orders``)."""
    if not only:
        return rows
    patterns = [p.strip() for p in only.split(",") if p.strip()]
    chosen = [row for row in rows if any(fnmatch.fnmatchcase(row.key, p) or row.key.startswith(p + "/")
                                         or row.key == p for p in patterns)]
    if not chosen:
        raise SystemExit(f"error: --only {only!r} matches no row; rows are e.g. {rows[0].key}, "
                         f"{rows[-1].key} (backend/what/money)")
    return chosen


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


# Output ----------------------------------------------------------------------------------------


def _s(value: float | None) -> str:
    return "-" if value is None else (f"{value:.3f}" if value < 10 else f"{value:.1f}")


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x" if value >= 10 else f"{value:.2f}x"


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def markdown_table(results: list[Result]) -> str:
    lines = ["| backend | what | money | ours s | floor s | ours / floor | read_sql s | read_sql / ours | "
             "ours peak RSS MB | floor peak RSS MB | frame MB | peak / frame | rows | path |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for result in results:
        row = result.row
        ours, floor, slow = (result.median(c) for c in CONTENDERS)
        frame_mb = result.median("ours", "frame_mb") if not row.is_report else result.median("floor", "frame_mb")
        rows = result.median("ours", "rows") if not row.is_report else result.median("floor", "rows")
        peak = result.peak("ours")
        error = result.error()
        lines.append(
            f"| {row.backend} | {row.what} | {row.money} | {_s(ours)} | {_s(floor)} | {_x(ratio(ours, floor))} | "
            f"{_s(slow)} | {_x(ratio(slow, ours))} | {_mb(peak)} | {_mb(result.peak('floor'))} | "
            f"{_mb(frame_mb)}{' (input)' if row.is_report and frame_mb is not None else ''} | "
            f"{_x(ratio(peak, frame_mb)) if not row.is_report and (frame_mb or 0) >= 1 else '-'} | "
            f"{'-' if rows is None else f'{rows:,.0f}'} | {result.path()}{f' ERROR {error}' if error else ''} |")
    for backend in dict.fromkeys(r.row.backend for r in results):
        reports = [r for r in results if r.row.backend == backend and r.row.is_report]
        times = [r.median("ours") for r in reports]
        floors = [r.median("floor") for r in reports]
        if len(reports) == len(REPORTS) and all(t is not None for t in times + floors):
            total = sum(t for t in times if t is not None)
            floor_total = sum(t for t in floors if t is not None)
            lines.append(f"| {backend} | four reports | - | {_s(total)} | {_s(floor_total)} | "
                         f"{_x(ratio(total, floor_total))} | - | - | "
                         f"{_mb(max(r.peak('ours') or 0 for r in reports))} | - | - | - | - | total |")
    return "\n".join(lines)


def machine_line() -> str:
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    return f"{os.cpu_count()} CPUs, load average {load} (1, 5, 15 min), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"


# The databases ---------------------------------------------------------------------------------


def database_urls(args) -> dict[str, str]:
    from sqlalchemy.engine import make_url

    urls = {}
    if "sqlite" in args.backends:
        urls["sqlite"] = f"sqlite:///{Path(args.workdir).resolve() / f'demo_{args.orders}.db'}"
    if "postgresql" in args.backends:
        urls["postgresql"] = (make_url(args.postgres_url).set(database=f"shivx_bench_{args.orders}")
                              .render_as_string(hide_password=False))
    return urls


def _admin(args):
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    return sa.create_engine(make_url(args.postgres_url).set(drivername="postgresql+psycopg"),
                            isolation_level="AUTOCOMMIT")


def count_orders(url: str) -> int | None:
    import sqlalchemy as sa

    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text("SELECT COUNT(*) FROM orders")).scalar()
    except sa.exc.SQLAlchemyError:
        return None
    finally:
        engine.dispose()


def prepare(backend: str, url: str, args) -> None:
    """The demo with exactly --orders orders at url: reused when there, else seeded afresh."""
    if backend == "sqlite":
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and count_orders(url) == args.orders:
            print(f"# reusing {path}", file=sys.stderr)
            return
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    else:
        name = f"shivx_bench_{args.orders}"
        admin = _admin(args)
        try:
            with admin.connect() as connection:
                exists = connection.exec_driver_sql("SELECT 1 FROM pg_database WHERE datname = %(n)s", {"n": name}).first()
                if exists and count_orders(url) == args.orders:
                    print(f"# reusing database {name}", file=sys.stderr)
                    return
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        finally:
            admin.dispose()
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "shivx_analytics.cli", "seed", "--url", url, "--scale", str(args.orders),
                    "--seed", "0", "--as-of", AS_OF[:10]], check=True)
    if backend == "postgresql":  # planner statistics for the push-down decisions, visibility map for scans
        import sqlalchemy as sa

        engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql("VACUUM ANALYZE")
        finally:
            engine.dispose()
    print(f"# seeded {backend} with {args.orders:,} orders in {time.perf_counter() - started:.0f} s", file=sys.stderr)


def drop_database(args) -> None:
    name = f"shivx_bench_{args.orders}"
    admin = _admin(args)
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()
    print(f"# dropped database {name} (--keep keeps it)", file=sys.stderr)


# Measuring -------------------------------------------------------------------------------------


def measure(row: Row, contender: str, url: str, args) -> dict:
    spec = {"what": row.what, "money": row.money, "contender": contender, "url": url,
            "sqlite_floor": args.sqlite_floor}
    command = [sys.executable, str(HERE), "--child", json.dumps(spec)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"{contender} timed out after {args.timeout:.0f} s"}
    if done.returncode:
        lines = done.stderr.strip().splitlines() or [f"exit {done.returncode}"]
        return {"error": f"{contender}: {lines[-1]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_rows(rows: list[Row], urls: dict[str, str], args) -> list[Result]:
    results = []
    for row in rows:
        result = Result(row)
        contenders = row.contenders(args.skip)
        for attempt in range(args.repeat):
            for contender in contenders:  # interleaved: ours, floor, read_sql, ours, floor, ...
                if contender == "read_sql" and attempt >= (args.read_sql_repeat or args.repeat):
                    continue
                run = measure(row, contender, urls[row.backend], args)
                result.runs.setdefault(contender, []).append(run)
        results.append(result)
        summary = {c: [None if r.get("seconds") is None else round(r["seconds"], 3) for r in result.runs[c]]
                   for c in contenders}
        error = result.error()
        print(f"# {row.key}: {json.dumps(summary)}{' ' + error if error else ''}", file=sys.stderr, flush=True)
    return results


# In the child ----------------------------------------------------------------------------------


def _vm(field_name: str) -> float | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """VmHWM: ru_maxrss would carry the parent's RSS from before the exec (Linux keeps it)."""
    import resource

    return _vm("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(spec: dict, profile: str | None = None) -> dict:
    row = Row(_backend(spec["url"]), spec["what"], spec["money"])
    work = {"ours": _ours, "floor": _floor, "read_sql": _read_sql}[spec["contender"]](row, spec)
    base = _vm("VmRSS")
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        produced = work()
        profiler.disable()
        seconds = time.perf_counter() - started
        profiler.dump_stats(profile)
    else:
        started = time.perf_counter()
        produced = work()
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_mb": peak_rss_mb(), "base_mb": base, **produced}


def _backend(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


def _frame_facts(frame) -> dict:
    return {"rows": len(frame), "frame_mb": frame.memory_usage(deep=True).sum() / 2**20}


def _ours(row: Row, spec: dict):
    import shivx_analytics as sx

    function = getattr(sx, row.what)
    url = spec["url"]
    if row.is_report:
        sx.reports  # noqa: B018 - import the reports (and matplotlib) before the clock starts
        kwargs = {"as_of": AS_OF} if row.what == "pnl_report" else {"as_of": AS_OF, "since": WHOLE_HISTORY}

        def report() -> dict:
            built = function(url, **kwargs)
            return {"path": built.parameters.get("path")}
        return report
    return lambda: _frame_facts(function(url, money=row.money))


def _read_sql(row: Row, spec: dict):
    import pandas as pd
    import sqlalchemy as sa

    from shivx_analytics import models
    from shivx_analytics.db import create_engine

    table = getattr(models, LOADERS[row.what][1]).__table__
    engine = create_engine(spec["url"])
    with engine.connect():  # the pool's first connection is set-up, not the read
        pass
    return lambda: _frame_facts(pd.read_sql(sa.select(table), engine))


def _floor(row: Row, spec: dict):
    from sqlalchemy.engine import make_url

    url = make_url(spec["url"])
    tables = row.tables
    if url.get_backend_name() == "postgresql":
        import psycopg

        libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)

        def copy() -> dict:
            size = rows = 0
            with psycopg.connect(libpq) as connection, connection.cursor() as cursor:
                for table in tables:
                    with cursor.copy(f"COPY (SELECT * FROM {table}) TO STDOUT (FORMAT binary)") as stream:
                        for block in stream:
                            size += len(block)
                    rows += cursor.rowcount
            return {"rows": rows, "frame_mb": size / 2**20}
        return copy
    path = url.database
    if spec.get("sqlite_floor") == "duckdb":
        import duckdb
        import duckdb_extension_sqlite_scanner as scanner

        extension = next(Path(scanner.__path__[0]).rglob(f"v{duckdb.__version__}/sqlite_scanner.duckdb_extension"))

        def scan() -> dict:  # loading the extension is timed, as a loader would have to
            database = duckdb.connect()
            database.execute(f"LOAD '{extension}'")
            database.execute(f"ATTACH '{path}' AS db (TYPE sqlite, READ_ONLY)")
            arrow = [database.execute(f"SELECT * FROM db.{table}").to_arrow_table() for table in tables]
            return {"rows": sum(t.num_rows for t in arrow), "frame_mb": sum(t.nbytes for t in arrow) / 2**20}
        return scan
    import adbc_driver_sqlite.dbapi as adbc

    def read() -> dict:
        arrow = []
        with adbc.connect(path) as connection, connection.cursor() as cursor:
            # one batch, so the driver infers each column's type from all its rows, not the first ones
            cursor.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(1 << 30)})
            for table in tables:
                cursor.execute(f"SELECT * FROM {table}")
                arrow.append(cursor.fetch_arrow_table())
        return {"rows": sum(t.num_rows for t in arrow), "frame_mb": sum(t.nbytes for t in arrow) / 2**20}
    return read


# Main ------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--orders", type=int, default=100_000, help="demo size in orders (100000, 1000000)")
    parser.add_argument("--backend", dest="backends", default="sqlite,postgresql",
                        help="comma-separated: sqlite, postgresql")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="a PostgreSQL server (the database in the URL is only used to create shivx_bench_<orders>)")
    parser.add_argument("--workdir", default="/tmp/shivx-report-bench", help="where the SQLite files live")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database for the next run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per contender (the median is shown)")
    parser.add_argument("--only", help="comma-separated patterns of backend/what/money, e.g. 'sqlite/load_*/decimal'")
    parser.add_argument("--read-sql-repeat", type=int, default=None,
                        help="runs for read_sql (default: --repeat); it takes minutes at 1M orders")
    parser.add_argument("--skip", default="", help="contenders to leave out, e.g. read_sql")
    parser.add_argument("--sqlite-floor", choices=("adbc", "duckdb"), default="adbc")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds one child may take")
    parser.add_argument("--json", type=Path, help="also write every run here")
    parser.add_argument("--profile", help="run ours once, in this process's child, under cProfile into this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_child(json.loads(args.child), args.profile)))
        return
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if set(args.backends) - set(BACKENDS):
        parser.error(f"--backend: choose from {', '.join(BACKENDS)}, got {','.join(args.backends)}")
    args.skip = [c.strip() for c in args.skip.split(",") if c.strip()]
    if set(args.skip) - {"floor", "read_sql"}:
        parser.error("--skip: floor and/or read_sql")
    if args.orders <= 0 or args.repeat <= 0 or (args.read_sql_repeat is not None and args.read_sql_repeat <= 0):
        parser.error("--orders, --repeat and --read-sql-repeat must be positive")
    rows = select_rows(all_rows(args.backends), args.only)
    urls = database_urls(args)
    for backend in dict.fromkeys(r.backend for r in rows):
        prepare(backend, urls[backend], args)
    try:
        if args.profile:
            if len(rows) != 1:
                parser.error(f"--profile needs --only to choose one row, it chose {len(rows)}")
            profile: str = args.profile
            spec = {"what": rows[0].what, "money": rows[0].money, "contender": "ours", "url": urls[rows[0].backend]}
            subprocess.run([sys.executable, str(HERE), "--child", json.dumps(spec), "--profile", profile], check=True)
            return
        print(f"# {machine_line()}", flush=True)
        results = run_rows(rows, urls, args)
        print(f"\n{args.orders:,} orders, median of {args.repeat}, interleaved, each run a fresh process; "
              f"SQLite floor: {args.sqlite_floor}; PostgreSQL floor: binary COPY drained\n")
        print(markdown_table(results))
        print(f"\n{machine_line()}")
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps([{"row": r.row.key, "runs": r.runs} for r in results], indent=1) + "\n")
    finally:
        if "postgresql" in urls and not args.keep and any(r.backend == "postgresql" for r in rows):
            drop_database(args)


if __name__ == "__main__":
    main()
