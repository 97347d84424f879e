"""The four reports at scale on PostgreSQL: pandas path vs push-down vs materialized views.

    python benchmarks/scale_benchmark.py seed --orders 10000000      # once: a database of its own
    python benchmarks/scale_benchmark.py run --repeat 1 --out benchmarks/results/scale.json
    python benchmarks/scale_benchmark.py drop

``seed`` migrates the database SHIVX_BENCH_URL (default
postgresql://postgres@127.0.0.1:5432/shivx_bench_scale, created if missing) and fills it with
the demo generator (seed 0, as_of 2025-10-28; about 2.5 audit rows per order), which also
refreshes the materialized views; it prints rows, seconds and the peak RSS of the process.
``run`` builds each report over a 30-day and a 365-day window ending at as_of on each path
(pandas: rows loaded into pandas; pushdown: aggregates computed in PostgreSQL; views: the
materialized views, for the reports that have them), each build in a fresh Python process, and
records wall seconds and that process's peak RSS. The security report runs with
verify_chain=False (the hash-chain check reads the whole log on every path alike). Ratios
between paths are the result; absolute times vary with the machine.
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

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/shivx_bench_scale"
AS_OF = "2025-10-28T00:00:00Z"
WINDOWS = {"30d": "2025-09-28T00:00:00Z", "365d": "2024-10-28T00:00:00Z"}
REPORTS = {"pnl": ("pnl_report", True), "execution": ("execution_report", False),
           "api_usage": ("api_usage_report", True), "security": ("security_report", False)}

CHILD = """
import json, resource, sys, time
import shivx_analytics as sx
name, url, since, path = sys.argv[1:5]
kwargs = {"pushdown": path == "pushdown"}
if name in ("pnl_report", "api_usage_report"):
    kwargs["use_views"] = path == "views"
if name == "security_report":
    kwargs["verify_chain"] = False
started = time.perf_counter()
report = getattr(sx, name)(url, since=since, until=%r, as_of=%r, **kwargs)
seconds = time.perf_counter() - started
assert report.parameters["path"] == path, report.parameters["path"]
print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""" % (AS_OF, AS_OF)


def bench_url() -> str:
    return os.environ.get("SHIVX_BENCH_URL", DEFAULT_URL)


def _admin(url: str):
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    return sa.create_engine(make_url(url).set(drivername="postgresql+psycopg", database="postgres"),
                            isolation_level="AUTOCOMMIT"), make_url(url).database


def seed(orders: int) -> None:
    import shivx_analytics as sx

    url = bench_url()
    admin, name = _admin(url)
    with admin.connect() as connection:
        if not connection.exec_driver_sql("SELECT 1 FROM pg_database WHERE datname = %(n)s", {"n": name}).first():
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    sx.migrate(url)
    started = time.perf_counter()
    rows = sx.generate_demo_data(url, seed=0, scale=orders, as_of=AS_OF, progress=True)
    seconds = time.perf_counter() - started
    print(json.dumps({"rows": rows, "seed_seconds": round(seconds, 1),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
    subprocess.run(["psql", url.replace("postgresql+psycopg", "postgresql"), "-c", "VACUUM ANALYZE"], check=True)
    from shivx_analytics.aggregates import refresh_views

    print(json.dumps({"refresh_views_seconds": {k: round(v, 1) for k, v in refresh_views(url).items()}}))


def run(repeat: int, out: Path | None, timeout: float, only: list[str] | None) -> None:
    url = bench_url()
    results = []
    for report, (function, has_views) in REPORTS.items():
        if only and report not in only:
            continue
        for window, since in WINDOWS.items():
            for path in ("pandas", "pushdown", "views") if has_views else ("pandas", "pushdown"):
                runs = []
                for _ in range(repeat):
                    try:
                        done = subprocess.run([sys.executable, "-c", CHILD, function, url, since, path],
                                              capture_output=True, text=True, timeout=timeout)
                    except subprocess.TimeoutExpired:
                        runs.append({"seconds": None, "peak_rss_mb": None, "error": f"timeout {timeout:.0f} s"})
                        break
                    if done.returncode:
                        runs.append({"seconds": None, "peak_rss_mb": None, "error": done.stderr.strip().splitlines()[-1]})
                        break
                    runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
                ok = [r for r in runs if r.get("seconds") is not None]
                row = {"report": report, "window": window, "path": path,
                       "seconds": round(statistics.median(r["seconds"] for r in ok), 2) if ok else None,
                       "peak_rss_mb": round(max(r["peak_rss_mb"] for r in ok)) if ok else None,
                       "error": next((r["error"] for r in runs if "error" in r), None)}
                results.append(row)
                print(json.dumps(row), flush=True)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print("| report | window | path | seconds | peak RSS (MB) | vs pandas |")
    print("|---|---|---|---|---|---|")
    for row in results:
        base = next((r for r in results if r["report"] == row["report"] and r["window"] == row["window"]
                     and r["path"] == "pandas"), None)
        ratio = (f"{base['seconds'] / row['seconds']:.1f}x faster" if base and base["seconds"] and row["seconds"]
                 else "")
        print(f"| {row['report']} | {row['window']} | {row['path']} | {row['seconds'] or row['error']} | "
              f"{row['peak_rss_mb'] or ''} | {ratio} |")


def drop() -> None:
    admin, name = _admin(bench_url())
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    seeding = commands.add_parser("seed")
    seeding.add_argument("--orders", type=int, default=10_000_000)
    running = commands.add_parser("run")
    running.add_argument("--repeat", type=int, default=1)
    running.add_argument("--timeout", type=float, default=900)
    running.add_argument("--out", type=Path)
    running.add_argument("--only", nargs="*")
    commands.add_parser("drop")
    arguments = parser.parse_args()
    if arguments.command == "seed":
        seed(arguments.orders)
    elif arguments.command == "run":
        run(arguments.repeat, arguments.out, arguments.timeout, arguments.only)
    else:
        drop()


if __name__ == "__main__":
    main()
