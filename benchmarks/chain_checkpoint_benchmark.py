"""Full vs incremental audit-chain verification (issue 12, "Security report"; docs/performance.md).

    python -m shivx_analytics.cli seed --url sqlite:////tmp/h5bench/demo500k.db --scale 200000 --as-of 2025-10-28
    python benchmarks/chain_checkpoint_benchmark.py sqlite:////tmp/h5bench/demo500k.db --day-rows 5600

On a seeded demo database (the owner's URL, migrated to head): times ``verify_audit_chain`` over
the whole chain, records a checkpoint at the tip (``record_checkpoint``, itself a full run when
there is none yet), appends ``--day-rows`` audit rows (about one demo day: the demo spreads its
rows over 90 days), then times the incremental verification (those rows only), the security
report both ways, and ``record_checkpoint`` (the nightly ``db checkpoint``). Each timing is the
median of ``--repeat`` runs in this process. It writes to the database: use a copy.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

import sqlalchemy as sa

import shivx_analytics as sx
from shivx_analytics.chain_checkpoints import record_checkpoint
from shivx_analytics.db import create_engine
from shivx_analytics.models import append_audit_entries

T = TypeVar("T")


def timed(work: Callable[[], T], repeat: int) -> tuple[float, T]:
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = work()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--day-rows", type=int, default=5_600)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    engine = create_engine(args.url)
    try:
        as_of = sx.data_as_of(engine)
        if as_of is None:
            raise SystemExit(f"{args.url} holds no demo data: seed it first (see the docstring)")
        full_s, full = timed(lambda: sx.verify_audit_chain(engine, full_chain=True), args.repeat)
        print(f"{engine.dialect.name}: {full.rows:,} audit rows; full verification {full_s:.2f} s (ok={full.ok})")
        first_s, first = timed(lambda: record_checkpoint(engine), 1)
        print(f"  first checkpoint (record_checkpoint): {first_s:.2f} s, scope: {first.verification.scope}")
        with engine.begin() as connection:
            append_audit_entries(connection, [
                {"event_type": "api_request", "action": "GET", "success": True, "request_id": f"day-{k}",
                 "timestamp": as_of - timedelta(seconds=args.day_rows - k)} for k in range(args.day_rows)])
        incremental_s, incremental = timed(lambda: sx.verify_audit_chain(engine), args.repeat)
        assert incremental.checkpoint is not None
        print(f"  incremental verification, {incremental.rows:,} rows after {incremental.checkpoint.describe()}: "
              f"{incremental_s:.3f} s (ok={incremental.ok}); full / incremental = {full_s / incremental_s:.0f}x")
        report_full_s, _ = timed(lambda: sx.security_report(engine, as_of=as_of, full_chain=True), 1)
        report_incremental_s, _ = timed(lambda: sx.security_report(engine, as_of=as_of), 1)
        print(f"  security_report: full_chain=True {report_full_s:.2f} s, from the checkpoint {report_incremental_s:.2f} s")
        nightly_s, nightly = timed(lambda: record_checkpoint(engine), 1)
        print(f"  nightly db checkpoint ({nightly.verification.rows:,} rows read): {nightly_s:.3f} s")
        with engine.connect() as connection:
            stored = connection.execute(sa.text("SELECT count(*) FROM security_audit_chain_checkpoints")).scalar_one()
        assert stored >= 2, stored
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
