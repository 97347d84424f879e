"""Secret hygiene: nothing we produce carries a password hash, a key hash, a plaintext key, a
password or the database password.

The small demo (seed 0, the notebooks' dataset) is seeded on each backend, and a user and an API
key are added through the ORM (the key's plaintext is known only to this test). Then everything
the toolkit produces from that database is collected: every report (repr, _repr_html_, HTML,
JSON and CSV exports), every loader's frame (repr, _repr_html_, CSV), the log lines of all of it
at DEBUG with SQLAlchemy echoing statements and rows, the CLI's `report` and `health` output
with a URL holding a password (and the files `report` writes), and the stored outputs of the
notebooks. Each secret, and each long part of it (a hash's salt and digest, a key without its
displayed prefix), is searched for in all of it.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlmodel import Session
from typer.testing import CliRunner

import shivx_analytics as sx
from shivx_analytics.cli import app
from shivx_analytics.db import create_engine, mask_url
from shivx_analytics.demo import DEMO_PASSWORD
from shivx_analytics.models import APIKeyCreate, UserCreate, build_api_key, build_user, record_login_failure
from shivx_analytics.security import api_key_display_prefix

AS_OF = "2025-10-28"
DATABASE_PASSWORD = "Db-pa55word-never-shown"  # the test server trusts local connections: only carried
USER_PASSWORD = "an0ther-user's-passphrase"
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
LOADERS = (sx.load_positions, sx.load_orders, sx.load_audit_logs, sx.load_api_keys, sx.load_users)
REPORTS = (sx.pnl_report, sx.execution_report, sx.api_usage_report, sx.security_report)


@pytest.fixture
def seeded(db_url):
    """The demo plus one ORM-built user and API key; returns (url with a password, plaintext key)."""
    sx.generate_demo_data(db_url, seed=0, scale="small", as_of=AS_OF)
    engine = create_engine(db_url)
    try:
        with Session(engine) as session:
            user = build_user(UserCreate(username="hygiene", email="hygiene@example.com", password=USER_PASSWORD))
            session.add(user)
            session.flush()
            plaintext, key = build_api_key(APIKeyCreate(user_id=user.user_id, name="hygiene bot"))
            session.add(key)
            session.commit()
            reprs = [repr(user), repr(key)]
            user_id = user.user_id
    finally:
        engine.dispose()
    url = db_url if db_url.startswith("sqlite") else (
        make_url(db_url).set(password=DATABASE_PASSWORD).render_as_string(hide_password=False))
    return url, plaintext, reprs, user_id


def secrets_in(url: str, plaintext_key: str) -> dict[str, str]:
    """Every secret to look for, by a label saying what it is: hashes from the database and their long parts."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            password_hashes = connection.execute(sa.text("SELECT DISTINCT password_hash FROM users")).scalars().all()
            key_hashes = connection.execute(sa.text("SELECT key_hash FROM api_keys")).scalars().all()
    finally:
        engine.dispose()
    assert len(password_hashes) >= 2 and len(key_hashes) >= 2
    found = {"plaintext API key": plaintext_key,
             "API key without its displayed prefix": plaintext_key[len(api_key_display_prefix(plaintext_key)):],
             "demo password": DEMO_PASSWORD, "user password": USER_PASSWORD}
    if not url.startswith("sqlite"):
        found["database password"] = DATABASE_PASSWORD
    for value in password_hashes:
        found[f"password_hash {value[:24]}..."] = value
        for part in value.replace(":", "$").split("$"):
            if len(part) >= 16:  # salts (32 hex) and digests (64 hex), not the algorithm or iterations
                found[f"part of password_hash {part[:12]}..."] = part
    for value in key_hashes:
        found[f"key_hash {value[:12]}..."] = value
    return found


@pytest.fixture
def debug_logs(caplog, capsys):
    """Every log line at DEBUG (SQLAlchemy's echo writes to stdout too): a function returning them all."""
    caplog.set_level(logging.DEBUG)
    return lambda: caplog.text + "\n".join(r.getMessage() for r in caplog.records) + capsys.readouterr().out


def test_no_output_carries_a_secret(backend, seeded, tmp_path, debug_logs):
    url, plaintext_key, orm_reprs, user_id = seeded
    secrets = secrets_in(url, plaintext_key)
    outputs: dict[str, str] = {f"ORM repr {n}": text for n, text in enumerate(orm_reprs)}

    echoing = create_engine(url, echo="debug")  # statements, parameters and every row fetched
    try:
        for load in LOADERS:
            frame = load(echoing)
            outputs |= {f"{load.__name__} repr": repr(frame), f"{load.__name__} html": frame._repr_html_(),
                        f"{load.__name__} csv": frame.to_csv(), f"{load.__name__} columns": " ".join(frame.columns)}
        with Session(echoing) as session:  # a transaction that wrote: loads read its rows through SQLAlchemy
            record_login_failure(session, user_id)
            for load in LOADERS:
                outputs[f"{load.__name__} in a session, csv"] = load(session).to_csv()
            session.rollback()
        for build in REPORTS:
            report = build(echoing, as_of=AS_OF)
            name = build.__name__
            outputs |= {f"{name} repr": repr(report), f"{name} _repr_html_": report._repr_html_(),
                        f"{name} html": report.to_html(tmp_path / f"{name}.html"),
                        f"{name} json": report.to_json(tmp_path / f"{name}.json")}
            for path in report.to_csv(tmp_path / f"{name}_csv"):
                outputs[f"{name} {path.name}"] = path.read_text()
    finally:
        echoing.dispose()
    outputs["log lines (DEBUG, SQLAlchemy echo)"] = debug_logs()
    logged = outputs["log lines (DEBUG, SQLAlchemy echo)"]
    assert "FROM users" in logged and "Row (" in logged  # the capture saw the statements and their rows

    runner = CliRunner()
    for args in (["report", "--url", url, "--out", str(tmp_path / "cli"), "--as-of", AS_OF],
                 ["health", "--url", url], ["health", "--json", "--url", url]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        outputs[f"CLI {args[0]} {args[1]} stdout"], outputs[f"CLI {args[0]} stderr"] = result.stdout, result.stderr
    for path in sorted((tmp_path / "cli").rglob("*")):
        if path.is_file():
            outputs[f"CLI file {path.name}"] = path.read_text()
    if not url.startswith("sqlite"):
        assert "***" in outputs["CLI health --url stdout"]  # the URL is shown, masked

    leaks = [(label, where) for label, secret in secrets.items() for where, text in outputs.items() if secret in text]
    assert not leaks, leaks
    print(f"\nsecret hygiene [{backend}]: {len(secrets)} secrets x {len(outputs)} outputs "
          f"({sum(len(t) for t in outputs.values()):,} characters): no leak")


def test_stored_notebook_outputs_carry_no_secret(tmp_path):
    """The notebooks run on the same demo (seed 0): its hashes must not be in their stored outputs."""
    url = f"sqlite:///{tmp_path / 'notebook-demo.db'}"
    sx.migrate(url)
    sx.generate_demo_data(url, seed=0, scale="small", as_of=AS_OF)
    secrets = {label: value for label, value in secrets_in(url, "shx_" + "x" * 43).items() if "API key" not in label}
    notebooks = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert notebooks
    for notebook in notebooks:
        outputs = json.dumps([cell.get("outputs", []) for cell in json.loads(notebook.read_text())["cells"]])
        leaks = [label for label, secret in secrets.items() if secret in outputs]
        assert not leaks, (notebook.name, leaks)


def test_database_urls_are_always_shown_masked():
    url = f"postgresql://analyst:{DATABASE_PASSWORD}@db.example.com:5432/shivx"
    engine = create_engine(url)
    try:
        for shown in (mask_url(url), repr(engine), str(engine.url), mask_url(engine.url)):
            assert DATABASE_PASSWORD not in shown and "***" in shown
    finally:
        engine.dispose()


@pytest.fixture(autouse=True)
def _cheap_user_passwords(monkeypatch):
    """The ORM user's hash at a low iteration count: the test is about where hashes go, not their cost."""
    import shivx_analytics.models.user as user_module
    from shivx_analytics.security import hash_password

    monkeypatch.setattr(user_module, "hash_password", functools.partial(hash_password, iterations=1_000))
