"""How fast do orders load, against what users would otherwise write? (issue 3, part 4)

    python benchmarks/load_benchmark.py --rows 100000 --rows 1000000 \\
        --postgres-url postgresql://postgres@127.0.0.1:5432/postgres

Builds (or reuses) one database of N demo orders per backend with
``shivx_analytics.demo.generate_demo_data(scale=N)``: a SQLite file in --workdir and a PostgreSQL
database ``shivx_bench_<N>`` on the server of --postgres-url (omit it to measure SQLite only).
Then every method runs in a fresh process, --repeat times (median reported):

  ours        sx.load_orders(url, money="decimal"): typed, exact, sorted frame
  orm         SQLModel objects (session.scalars(select(Order))) -> DataFrame
  read_sql    pd.read_sql(select(orders), engine)
  adbc        raw ADBC -> Arrow (SELECT *), money cast to decimal128(20, 8) -> pandas
  duckdb      raw DuckDB scanner -> Arrow (SELECT *), money as decimal128(20, 8) -> pandas
  copy        PostgreSQL only: COPY (SELECT * FROM orders) TO STDOUT (FORMAT binary), bytes read,
              no DataFrame: the floor for anything reading PostgreSQL through libpq

Each child reports its wall time for the load (imports excluded) and its own peak RSS
(resource.getrusage(RUSAGE_SELF).ru_maxrss). The table shows seconds, rows/s, peak RSS and the
ratios the issue sets targets for: ours / fastest raw columnar path (<= 1.25), ours / COPY
floor (<= 1.5), read_sql / ours (>= 5), orm / ours (>= 20).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
METHODS = ("ours", "orm", "read_sql", "adbc", "duckdb", "copy")
RAW_COLUMNAR = ("adbc", "duckdb")
MONEY_COLUMNS = ("amount_in", "amount_out", "price")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append", help="orders in the database (repeatable)")
    parser.add_argument("--postgres-url", help="a PostgreSQL server (any database on it); omit for SQLite only")
    parser.add_argument("--workdir", default="/tmp/shivx-bench", help="where the SQLite files live")
    parser.add_argument("--repeat", type=int, default=3, help="runs per method (the median is shown)")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ", ".join(METHODS))
    parser.add_argument("--slow-repeat", type=int, default=None,
                        help="runs for orm and read_sql (default: --repeat); they take minutes at 1M rows")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(args.child, args.url)))
        return
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(methods) - set(METHODS)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}: choose from {list(METHODS)}")
    rows_list = args.rows or [100_000]
    backends = ["sqlite"] + (["postgresql"] if args.postgres_url else [])
    results = []
    for n_rows in rows_list:
        for backend in backends:
            url = prepare_database(backend, n_rows, args)
            for method in methods:
                if method == "copy" and backend != "postgresql":
                    continue
                repeat = args.slow_repeat if (method in ("orm", "read_sql") and args.slow_repeat) else args.repeat
                runs = [measure(method, url) for _ in range(repeat)]
                results.append(summarize(backend, n_rows, method, runs))
                print(format_row(results[-1]), flush=True)
    print()
    print(markdown_table(results))


# The databases -------------------------------------------------------------------------------


def prepare_database(backend: str, n_rows: int, args) -> str:
    """The URL of a database holding exactly n_rows demo orders, generated once and reused."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    from shivx_analytics.db import create_engine, migrate
    from shivx_analytics.demo import generate_demo_data

    if backend == "sqlite":
        path = Path(args.workdir) / f"orders_{n_rows}.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{path}"
        if path.exists() and count_orders(url) == n_rows:
            return url
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    else:
        name = f"shivx_bench_{n_rows}"
        url = make_url(args.postgres_url).set(database=name).render_as_string(hide_password=False)
        admin = sa.create_engine(make_url(args.postgres_url).set(drivername="postgresql+psycopg"),
                                 isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                exists = connection.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
                if exists and count_orders(url) == n_rows:
                    return url
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        finally:
            admin.dispose()
    migrate(url)
    started = time.perf_counter()
    counts = generate_demo_data(url, seed=0, scale=n_rows, as_of="2025-10-28", progress=True)
    print(f"# seeded {backend} with {counts} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    engine = create_engine(url)
    try:
        if backend == "postgresql":
            with engine.connect() as connection:
                connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
    finally:
        engine.dispose()
    return url


def count_orders(url: str) -> int | None:
    import sqlalchemy as sa

    from shivx_analytics.db import create_engine

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text("SELECT COUNT(*) FROM orders")).scalar()
    except sa.exc.SQLAlchemyError:
        return None
    finally:
        engine.dispose()


# Measuring -----------------------------------------------------------------------------------


def measure(method: str, url: str) -> dict:
    """One run of a method in a fresh process."""
    completed = subprocess.run([sys.executable, str(HERE), "--child", method, "--url", url],
                               capture_output=True, text=True, check=False, env=os.environ.copy())
    if completed.returncode != 0:
        raise RuntimeError(f"{method} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def run_child(method: str, url: str) -> dict:
    """Import what the method needs, then time the load alone."""
    function = {"ours": load_ours, "orm": load_orm, "read_sql": load_read_sql, "adbc": load_adbc,
                "duckdb": load_duckdb, "copy": load_copy}[method]
    prepare = function(url)  # imports and connection set-up are not timed
    started = time.perf_counter()
    rows = prepare()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": rows, "peak_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """This process's peak RSS. ru_maxrss survives exec on Linux (a child would report its parent's
    peak from before the exec), so VmHWM, which starts afresh with the new program, comes first."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_ours(url):
    import shivx_analytics as sx

    return lambda: len(sx.load_orders(url, money="decimal"))


def load_orm(url):
    import pandas as pd
    import sqlalchemy as sa
    from sqlalchemy.orm import Session

    from shivx_analytics.db import create_engine
    from shivx_analytics.models import Order

    engine = create_engine(url)
    columns = [c.name for c in Order.__table__.columns if c.name != "extra_data"]

    def run():
        with Session(engine) as session:
            orders = session.scalars(sa.select(Order)).all()
            frame = pd.DataFrame([{name: getattr(o, name) for name in columns} for o in orders])
            frame["total_value"] = [o.total_value for o in orders]
            frame["executed_price"] = [o.executed_price for o in orders]
        return len(frame)
    return run


def load_read_sql(url):
    import pandas as pd
    import sqlalchemy as sa

    from shivx_analytics.db import create_engine
    from shivx_analytics.models import Order

    engine = create_engine(url)
    return lambda: len(pd.read_sql(sa.select(Order.__table__), engine))


def load_adbc(url):
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        import adbc_driver_sqlite.dbapi as driver

        target = parsed.database
    else:
        import adbc_driver_postgresql.dbapi as driver

        target = parsed.set(drivername="postgresql").render_as_string(hide_password=False)

    def run():
        with driver.connect(target) as connection, connection.cursor() as cursor:
            if parsed.get_backend_name() == "sqlite":  # the driver infers types from the first rows
                cursor.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(1 << 30)})
            cursor.execute("SELECT * FROM orders")
            return len(_to_pandas(cursor.fetch_arrow_table()))
    return run


def load_duckdb(url):
    import duckdb
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        import duckdb_extension_sqlite_scanner as scanner

        name = "sqlite_scanner"
        attach = f"ATTACH '{parsed.database}' AS db (TYPE sqlite, READ_ONLY)"
        table = "db.orders"
    else:
        import duckdb_extension_postgres_scanner as scanner

        name = "postgres_scanner"
        libpq = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        attach = f"ATTACH '{libpq}' AS db (TYPE postgres, READ_ONLY)"
        table = "db.public.orders"
    extension = next(Path(scanner.__path__[0]).rglob(f"v{duckdb.__version__}/{name}.duckdb_extension"))

    def run():  # loading the extension is timed, as it is in the loaders (once per process)
        database = duckdb.connect()
        database.execute(f"LOAD '{extension}'")
        database.execute(attach)
        frame = _to_pandas(database.execute(f"SELECT * FROM {table}").to_arrow_table())
        return len(frame)
    return run


def load_copy(url):
    import psycopg
    from sqlalchemy.engine import make_url

    libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)

    def run():
        size = 0
        with psycopg.connect(libpq) as connection, connection.cursor() as cursor:
            with cursor.copy("COPY (SELECT * FROM orders) TO STDOUT (FORMAT binary)") as copy:
                for block in copy:
                    size += len(block)
            return connection.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
    return run


def _to_pandas(table):
    """What a user of a raw columnar path gets: money as decimal128(20, 8), the rest as it came."""
    import pandas as pd
    import pyarrow as pa

    for name in MONEY_COLUMNS:
        index = table.schema.get_field_index(name)
        column = table.column(index)
        if isinstance(column.type, pa.BaseExtensionType):  # ADBC PostgreSQL: NUMERIC as opaque text
            column = pa.chunked_array([chunk.storage for chunk in column.chunks], column.type.storage_type)
        table = table.set_column(index, name, column.cast(pa.decimal128(20, 8)))
    return table.to_pandas(types_mapper=lambda t: pd.ArrowDtype(t) if pa.types.is_decimal(t) else None,
                           ignore_metadata=True)


# Reporting -----------------------------------------------------------------------------------


def summarize(backend: str, n_rows: int, method: str, runs: list[dict]) -> dict:
    seconds = statistics.median(r["seconds"] for r in runs)
    return {"backend": backend, "rows": n_rows, "method": method, "seconds": seconds,
            "rows_per_s": runs[0]["rows"] / seconds if seconds else float("inf"),
            "peak_mb": max(r["peak_mb"] for r in runs), "runs": [round(r["seconds"], 3) for r in runs]}


def format_row(result: dict) -> str:
    return (f"{result['backend']:<10} {result['rows']:>9,} {result['method']:<9} {result['seconds']:8.3f} s "
            f"{result['rows_per_s']:>12,.0f} rows/s {result['peak_mb']:7.0f} MB  runs={result['runs']}")


def markdown_table(results: list[dict]) -> str:
    lines = ["| backend | rows | method | seconds (median) | rows/s | peak RSS (MB) | vs ours |",
             "|---|---|---|---|---|---|---|"]
    by_key = {(r["backend"], r["rows"], r["method"]): r for r in results}
    for r in results:
        ours = by_key.get((r["backend"], r["rows"], "ours"))
        ratio = f"{r['seconds'] / ours['seconds']:.2f}x" if ours else "-"
        lines.append(f"| {r['backend']} | {r['rows']:,} | {r['method']} | {r['seconds']:.3f} | "
                     f"{r['rows_per_s']:,.0f} | {r['peak_mb']:.0f} | {ratio} |")
    lines.append("")
    for backend, n_rows in dict.fromkeys((r["backend"], r["rows"]) for r in results):
        ours = by_key.get((backend, n_rows, "ours"))
        if not ours:
            continue
        raw = [by_key[(backend, n_rows, m)] for m in RAW_COLUMNAR if (backend, n_rows, m) in by_key]
        checks = []
        if raw:
            fastest = min(raw, key=lambda r: r["seconds"])
            checks.append(f"ours / fastest raw columnar ({fastest['method']}) = "
                          f"{ours['seconds'] / fastest['seconds']:.2f} (target <= 1.25)")
        if (backend, n_rows, "copy") in by_key:
            checks.append(f"ours / COPY floor = {ours['seconds'] / by_key[(backend, n_rows, 'copy')]['seconds']:.2f}"
                          f" (target <= 1.5)")
        for slow, target in (("read_sql", 5), ("orm", 20)):
            if (backend, n_rows, slow) in by_key:
                checks.append(f"{slow} / ours = {by_key[(backend, n_rows, slow)]['seconds'] / ours['seconds']:.1f}"
                              f" (target >= {target})")
        checks.append(f"ours peak RSS = {ours['peak_mb']:.0f} MB" + (" (target < 800 at 1M)" if n_rows >= 1_000_000 else ""))
        lines.append(f"- {backend}, {n_rows:,} orders: " + "; ".join(checks))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
