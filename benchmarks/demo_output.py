"""Does the demo generator still write the same rows? A byte-for-byte check for refactors and speed work.

    python benchmarks/demo_output.py --save /tmp/demo-before \\
        --postgres-url postgresql://postgres@127.0.0.1:5432/postgres
    # ... change shivx_analytics/demo/ ...
    python benchmarks/demo_output.py --compare /tmp/demo-before \\
        --postgres-url postgresql://postgres@127.0.0.1:5432/postgres

Seeds the demo (seed 0, as_of 2025-10-28; scales "small" and 30,000 orders, the second
spanning several write batches) into a fresh SQLite file and, with --postgres-url, a fresh
PostgreSQL database ``shivx_demo_output_<pid>`` on that server (dropped afterwards). Then it dumps
every table the demo writes, every column (hashes and the chain's tip included), rows in primary
key order, one line a row, to ``<backend>-<scale>.txt`` in the --save or --compare folder; with
--compare it writes beside them as ``*.new.txt`` and exits 1 on the first difference it reports.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import sys
import tempfile
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from shivx_analytics.db import create_engine, migrate
from shivx_analytics.demo import generate_demo_data

AS_OF = "2025-10-28"
SCALES: tuple[str | int, ...] = ("small", 30_000)
# every table the demo writes, with the key that orders its rows
TABLES = (("users", "user_id"), ("api_keys", "key_id"), ("positions", "position_id"), ("orders", "order_id"),
          ("security_audit_logs", "chain_seq"), ("security_audit_chain", "id"))


def dump(url: str, target: Path) -> int:
    """Write every table's rows (all columns, primary key order) to ``target``; returns the rows written."""
    engine = create_engine(url)
    written = 0
    try:
        with engine.connect() as connection, target.open("w", encoding="utf-8") as out:
            for table, key in TABLES:
                result = connection.exec_driver_sql(f'SELECT * FROM "{table}" ORDER BY "{key}"')
                out.write(f"# {table}: {', '.join(result.keys())}\n")
                for row in result:
                    out.write("\t".join(repr(value) for value in row) + "\n")
                    written += 1
    finally:
        engine.dispose()
    return written


def _postgres_database(server: str) -> tuple[str, sa.Engine, str]:
    name = f"shivx_demo_output_{os.getpid()}"
    admin = sa.create_engine(make_url(server).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    return make_url(server).set(database=name).render_as_string(hide_password=False), admin, name


def seed_and_dump(backend: str, scale: str | int, target: Path, postgres_url: str | None) -> None:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{Path(folder) / 'demo.db'}"
            migrate(url)
            generate_demo_data(url, seed=0, scale=scale, as_of=AS_OF)
            rows = dump(url, target)
    else:
        assert postgres_url is not None
        url, admin, name = _postgres_database(postgres_url)
        try:
            migrate(url)
            generate_demo_data(url, seed=0, scale=scale, as_of=AS_OF)
            rows = dump(url, target)
        finally:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()
    print(f"{backend} {scale}: {rows:,} rows -> {target}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--save", type=Path, help="folder to write the reference dumps to")
    mode.add_argument("--compare", type=Path, help="folder of reference dumps to compare against")
    parser.add_argument("--postgres-url", help="a PostgreSQL server (any database on it); omit for SQLite only")
    parser.add_argument("--scale", action="append", help="scales to dump (repeatable; default: small and 30000)")
    args = parser.parse_args()
    scales = [int(s) if s.isdecimal() else s for s in args.scale] if args.scale else list(SCALES)
    backends = ["sqlite"] + (["postgresql"] if args.postgres_url else [])
    folder = args.save or args.compare
    folder.mkdir(parents=True, exist_ok=True)
    different = []
    for backend in backends:
        for scale in scales:
            reference = folder / f"{backend}-{scale}.txt"
            if args.save:
                seed_and_dump(backend, scale, reference, args.postgres_url)
                continue
            if not reference.is_file():
                print(f"error: no reference dump {reference}: run with --save first", file=sys.stderr)
                return 2
            new = folder / f"{backend}-{scale}.new.txt"
            seed_and_dump(backend, scale, new, args.postgres_url)
            if filecmp.cmp(reference, new, shallow=False):
                print(f"{backend} {scale}: identical")
            else:
                different.append(f"{reference} != {new}")
    for line in different:
        print(f"DIFFERENT: {line}", file=sys.stderr)
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main())
