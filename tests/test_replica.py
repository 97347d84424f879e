"""SHIVX_ANALYTICS_DATABASE_URL against a real streaming replica (a hot standby).

The module starts a primary cluster of its own (the machine's cluster has no replication line in
pg_hba.conf): initdb into a temporary directory as the postgres OS user, wal_level=replica, a
replication line, a free port; migrates it, grants the roles, seeds a small demo dataset; then
pg_basebackup -R makes a standby on another free port, which the tests read after it has replayed
the primary's WAL. Under the analytics role, through SHIVX_ANALYTICS_DATABASE_URL: the loaders with
no source and the four reports give the primary's results, `shivx-analytics report all` too, the
hash chain verifies; writes are refused, and the CLI's write commands say why. Both clusters are
stopped and removed afterwards, whatever happened.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from _databases import IN_CI, require_backend
from sqlalchemy.engine import make_url

import shivx_analytics as sx
from shivx_analytics import db
from shivx_analytics.audit_chain import verify_audit_chain
from shivx_analytics.chain_checkpoints import CheckpointRefused, record_checkpoint
from shivx_analytics.roles import RoleNames, grant_roles

pytestmark = [pytest.mark.parametrize("backend", ["postgresql"]), pytest.mark.slow]

AS_OF = "2025-10-28"
ROLES = RoleNames()  # the cluster is this module's own: the documented role names
DATABASE, BEHIND = "shivx", "shivx_behind"  # seeded; migrated one revision short of head, empty
LOADERS = ("load_positions", "load_orders", "load_audit_logs", "load_api_keys", "load_users")
REPORTS = {"pnl": "pnl_report", "execution": "execution_report", "api-usage": "api_usage_report",
           "security": "security_report"}
TIMINGS: dict[str, float] = {}


def postgres_bindir() -> Path | None:
    candidates = []
    if shutil.which("pg_config"):
        candidates.append(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip())
    candidates += sorted(str(p) for p in Path("/usr/lib/postgresql").glob("*/bin"))[::-1]
    return next((Path(c) for c in candidates if c and (Path(c) / "initdb").exists()), None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def as_postgres(*command: str | Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run a server program as the postgres OS user (initdb and postgres refuse root)."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    result = subprocess.run([*prefix, *map(str, command)], capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} failed ({result.returncode}): {result.stderr[-2000:]}")
    return result


def url(port: int, database: str = DATABASE, user: str = "postgres") -> str:
    return f"postgresql://{user}@127.0.0.1:{port}/{database}"


@dataclass
class Replication:
    primary_port: int
    standby_port: int

    def primary(self, database: str = DATABASE, user: str = "postgres") -> str:
        return url(self.primary_port, database, user)

    def standby(self, database: str = DATABASE, user: str = ROLES.analytics) -> str:
        return url(self.standby_port, database, user)


@pytest.fixture(scope="module")
def replication(request) -> Iterator[Replication]:
    require_backend("postgresql")
    bindir = postgres_bindir()
    if bindir is None:
        if IN_CI:
            pytest.fail("no PostgreSQL server programs (initdb) found: the replica tests are required in CI")
        pytest.skip("no PostgreSQL server programs (initdb)")
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="shivx-replica-"))
    shutil.chown(root, "postgres", "postgres") if os.geteuid() == 0 else None
    os.chmod(root, 0o700)
    primary_dir, standby_dir = root / "primary", root / "standby"
    ports = Replication(free_port(), free_port())
    running: list[Path] = []
    try:
        as_postgres(bindir / "initdb", "-D", primary_dir, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        with open(primary_dir / "postgresql.conf", "a") as conf:
            conf.write(f"\nport = {ports.primary_port}\nlisten_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{root}'\nwal_level = replica\nmax_wal_senders = 4\n"
                       "hot_standby = on\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                       "shared_buffers = 32MB\nmax_connections = 40\n")
        with open(primary_dir / "pg_hba.conf", "a") as hba:
            hba.write("host replication postgres 127.0.0.1/32 trust\n")
        as_postgres(bindir / "pg_ctl", "-D", primary_dir, "-l", root / "primary.log", "-w", "start")
        running.append(primary_dir)
        admin = sa.create_engine(make_url(ports.primary("postgres")).set(drivername="postgresql+psycopg"),
                                 isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                for name in (DATABASE, BEHIND):
                    connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        finally:
            admin.dispose()
        for name in (DATABASE, BEHIND):
            sx.migrate(ports.primary(name))
            grant_roles(ports.primary(name), ROLES)
        db.downgrade(ports.primary(BEHIND), "-1")
        sx.generate_demo_data(ports.primary(), seed=0, scale=300, as_of=AS_OF)
        as_postgres(bindir / "pg_basebackup", "-D", standby_dir, "-R", "-X", "stream", "-h", "127.0.0.1",
                    "-p", ports.primary_port, "-U", "postgres", "--no-sync", "--checkpoint=fast")
        as_postgres(bindir / "pg_ctl", "-D", standby_dir, "-l", root / "standby.log", "-w",
                    "-o", f"-p {ports.standby_port} -k {root}", "start")
        running.append(standby_dir)
        wait_for_replay(ports)
        TIMINGS["start both clusters, migrate, grant, seed, replay"] = time.monotonic() - started
        yield ports
    finally:
        for directory in reversed(running):
            as_postgres(bindir / "pg_ctl", "-D", directory, "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(root, ignore_errors=True)
        TIMINGS["whole module, teardown included"] = time.monotonic() - started
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        if reporter is not None and capture is not None:  # past pytest's output capture
            with capture.global_and_fixture_disabled():
                reporter.write_line("\ntest_replica: " + ", ".join(f"{k} {v:.1f} s" for k, v in TIMINGS.items()))


def wait_for_replay(ports: Replication, timeout_s: float = 60) -> None:
    """Until the standby has replayed the primary's current WAL position."""
    primary = sa.create_engine(make_url(ports.primary()).set(drivername="postgresql+psycopg"))
    standby = sa.create_engine(make_url(ports.standby(user="postgres")).set(drivername="postgresql+psycopg"))
    try:
        with primary.connect() as connection:
            # the insert position: it includes a commit record not yet written out (asynchronous commit)
            target = connection.exec_driver_sql("SELECT pg_current_wal_insert_lsn()").scalar_one()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with standby.connect() as connection:
                    behind = connection.execute(sa.text(
                        "SELECT pg_is_in_recovery(), pg_wal_lsn_diff(:target, pg_last_wal_replay_lsn())"),
                        {"target": target}).one()
                if behind[0] and behind[1] is not None and behind[1] <= 0:
                    return
            except sa.exc.OperationalError:  # still starting up
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the standby did not replay {target} within {timeout_s} s")
            time.sleep(0.1)
    finally:
        primary.dispose()
        standby.dispose()


@pytest.fixture
def on_the_replica(replication, settings_env) -> Replication:
    """SHIVX_DATABASE_URL the primary, SHIVX_ANALYTICS_DATABASE_URL the standby under the analytics role."""
    settings_env.set(SHIVX_DATABASE_URL=replication.primary(), SHIVX_ANALYTICS_DATABASE_URL=replication.standby())
    return replication


def test_the_standby_is_a_hot_standby_that_refuses_writes(backend, replication):
    engine = db.create_engine(replication.standby(user="postgres"))  # even the superuser
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT pg_is_in_recovery()").scalar_one() is True
            with pytest.raises(sa.exc.DBAPIError, match="read-only transaction") as raised:
                connection.exec_driver_sql("DELETE FROM security_audit_logs")
            assert raised.value.orig.sqlstate == "25006"
    finally:
        engine.dispose()


def test_the_loaders_read_the_replica_and_match_the_primary(backend, on_the_replica):
    started = time.monotonic()
    for loader in LOADERS:
        from_replica = getattr(sx, loader)()  # no source: SHIVX_ANALYTICS_DATABASE_URL
        from_primary = getattr(sx, loader)(on_the_replica.primary())
        assert len(from_replica) > 0, loader
        pd.testing.assert_frame_equal(from_replica, from_primary, check_exact=True)
    TIMINGS["loaders on both"] = time.monotonic() - started


def test_the_reports_read_the_replica_and_match_the_primary(backend, on_the_replica):
    started = time.monotonic()
    for name, builder in REPORTS.items():
        from_replica = getattr(sx, builder)(as_of=AS_OF).to_dict()
        from_primary = getattr(sx, builder)(on_the_replica.primary(), as_of=AS_OF).to_dict()
        assert from_replica["summary"] == from_primary["summary"], name
        assert from_replica["tables"] == from_primary["tables"], name
    assert from_replica["summary"]["audit_chain_ok"] is True  # the security report verified the chain there
    TIMINGS["reports on both"] = time.monotonic() - started


def test_the_hash_chain_verifies_on_the_replica(backend, replication):
    verification = verify_audit_chain(replication.standby())
    assert verification.ok, verification
    with db.create_engine(replication.standby()).connect() as connection:
        rows = connection.exec_driver_sql("SELECT count(*) FROM security_audit_logs").scalar_one()
    assert rows > 0


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    environment = {**os.environ, **env}
    environment.pop("MPLBACKEND", None)
    return subprocess.run([sys.executable, "-m", "shivx_analytics.cli", *args], capture_output=True, text=True,
                          timeout=300, env=environment)


def test_cli_report_all_reads_the_replica(backend, replication, tmp_path):
    started = time.monotonic()
    result = cli("report", "all", "--out", str(tmp_path), "--as-of", AS_OF, "--format", "json", "--timeout", "240",
                 env={"SHIVX_DATABASE_URL": replication.primary(), "SHIVX_ANALYTICS_DATABASE_URL": replication.standby()})
    TIMINGS["`report all` on the replica"] = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    for name, builder in REPORTS.items():
        written = json.loads((tmp_path / f"{name.replace('-', '_')}.json").read_text())
        expected = json.loads(getattr(sx, builder)(replication.primary(), as_of=AS_OF).to_json())
        assert (written["summary"], written["tables"]) == (expected["summary"], expected["tables"]), name


def test_cli_write_commands_on_the_replica_fail_saying_it_is_read_only(backend, replication):
    behind = replication.standby(BEHIND, user="postgres")
    for command in (["db", "upgrade", "--url", behind], ["seed", "--url", behind, "--as-of", AS_OF]):
        result = cli(*command, env={})
        assert result.returncode == 4, (command, result.returncode, result.stderr)
        assert result.stderr.startswith("error: ") and "read-only transaction" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert db.current_revision(behind) != db.head_revision()  # nothing was written there


def test_the_standby_verifies_from_the_primarys_checkpoint_and_cannot_record_one(backend, replication):
    """Last in the module: it records a checkpoint on the primary. The standby (analytics role)
    reads it, verifies only the rows after it and says so; recording there is refused."""
    recorded = record_checkpoint(replication.primary())  # the owner, on the primary
    assert recorded.verification.ok and recorded.checkpoint is not None
    wait_for_replay(replication)
    on_standby = verify_audit_chain(replication.standby())
    assert on_standby.ok and on_standby.checkpoint is not None and on_standby.checkpoint.id == recorded.checkpoint.id
    assert on_standby.rows == 0 and on_standby.first_seq == recorded.checkpoint.chain_seq + 1
    assert on_standby.scope.startswith(f"from checkpoint {recorded.checkpoint.id} ")
    full = verify_audit_chain(replication.standby(), full_chain=True)
    assert full.ok and full.rows == recorded.checkpoint.chain_seq
    report = sx.security_report(replication.standby(), as_of=AS_OF)
    assert report.summary["audit_chain_ok"] is True
    assert report.summary["audit_chain_checkpoint_id"] == recorded.checkpoint.id
    for who in ("postgres", ROLES.analytics):
        with pytest.raises(CheckpointRefused, match="read-only hot standby|may not record"):
            record_checkpoint(replication.standby(user=who))
