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
from urllib.parse import quote

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


@pytest.mark.slow
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


@pytest.mark.slow
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


# Attacks from outside: echo on while secrets are written, role passwords, ?password= URLs.

QUERY_PASSWORD = "Qs-pa55word-in-the-query"
QUERY_SSL_PASSWORD = "Ssl-pa55phrase-in-the-query"


def test_echo_never_logs_the_hashes_of_new_users_and_keys(backend, db_url, settings_env, debug_logs):
    """SHIVX_ECHO=true (even with hide_parameters=False asked for): creating a user and a key, and a
    failing duplicate insert whose error would quote the row, show no hash, password or key."""
    settings_env.set(SHIVX_ECHO="true")
    engine = create_engine(db_url, hide_parameters=False)
    try:
        with Session(engine) as session:
            user = build_user(UserCreate(username="echoed", email="echoed@example.com", password=USER_PASSWORD))
            session.add(user)
            session.flush()
            plaintext, key = build_api_key(APIKeyCreate(user_id=user.user_id, name="echoed bot"))
            session.add(key)
            session.commit()
            hashes = [user.password_hash, key.key_hash]
        with pytest.raises(sa.exc.IntegrityError) as duplicate, Session(engine) as session:
            session.add(build_user(UserCreate(username="echoed", email="echoed@example.com", password=USER_PASSWORD)))
            session.commit()
    finally:
        engine.dispose()
    shown = debug_logs() + "\n" + str(duplicate.value)
    assert "INSERT INTO users" in shown and "INSERT INTO api_keys" in shown  # the capture saw the statements
    secrets = [USER_PASSWORD, plaintext, *hashes, *(part for part in hashes[0].split("$") if len(part) >= 16)]
    assert not [secret for secret in secrets if secret in shown]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql"])
def test_db_grant_never_shows_a_role_password(backend, db_url, settings_env, debug_logs, monkeypatch):
    """`db grant` with echo on: the password, and the SCRAM verifier sent for it, appear in no log
    and no output; the role gets a verifier that checks out against the password."""
    import base64
    import hashlib
    import hmac
    import uuid

    settings_env.set(SHIVX_ECHO="true")
    role_password = "R0le-pa55word-" + uuid.uuid4().hex
    monkeypatch.setenv("SHIVX_TEST_APP_PASSWORD", role_password)
    names = (f"shivx_app_{uuid.uuid4().hex[:8]}", f"shivx_ro_{uuid.uuid4().hex[:8]}")
    try:
        result = CliRunner().invoke(app, ["db", "grant", "--url", db_url, "--app-role", names[0],
                                          "--analytics-role", names[1], "--app-password-env", "SHIVX_TEST_APP_PASSWORD"])
        assert result.exit_code == 0, result.output
        with create_engine(db_url).connect() as connection:
            verifier = connection.execute(sa.text("SELECT rolpassword FROM pg_authid WHERE rolname = :n"),
                                          {"n": names[0]}).scalar_one()
        logged = debug_logs()
        shown = logged + result.stdout + result.stderr
        assert f"ALTER ROLE {names[0]} PASSWORD ***" in result.stdout
        assert "GRANT CONNECT" in logged and "CREATE ROLE" in logged  # echo was on and captured
        assert role_password not in shown and verifier not in shown
        assert not [part for part in verifier.replace(":", "$").split("$") if len(part) >= 16 and part in shown]
        # SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey> (RFC 5803): the password's
        algorithm, rest = verifier.split("$", 1)
        iterations_salt, keys = rest.split("$")
        iterations, salt = iterations_salt.split(":")
        stored_key, server_key = keys.split(":")
        salted = hashlib.pbkdf2_hmac("sha256", role_password.encode(), base64.b64decode(salt), int(iterations))
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        assert algorithm == "SCRAM-SHA-256"
        assert base64.b64decode(stored_key) == hashlib.sha256(client_key).digest()
        assert base64.b64decode(server_key) == hmac.new(salted, b"Server Key", "sha256").digest()
    finally:
        _drop_roles(db_url, names)


def _drop_roles(db_url: str, names) -> None:
    admin = create_engine(db_url)
    with admin.begin() as connection:
        for role in names:
            if connection.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :n"), {"n": role}).first():
                connection.exec_driver_sql(f'DROP OWNED BY "{role}"')
                connection.exec_driver_sql(f'DROP ROLE "{role}"')
    admin.dispose()


def _with_query_secrets(url: str, **extra: str) -> str:
    return make_url(url).update_query_dict({"password": QUERY_PASSWORD, "sslpassword": QUERY_SSL_PASSWORD,
                                           **extra}).render_as_string(hide_password=False)


@pytest.mark.slow
def test_query_string_secrets_are_masked_on_every_output_path(backend, db_url, tmp_path):
    """A URL with ?password= and ?sslpassword=: health (text, JSON), db current and upgrade, report
    stdout and files (parameters name the database), an unreachable database's error, a
    driver's error quoting the URL, the engine's repr and str(url), and mask_url."""
    url = _with_query_secrets(db_url)
    secrets = (QUERY_PASSWORD, QUERY_SSL_PASSWORD, quote(QUERY_SSL_PASSWORD, safe=""))
    runner = CliRunner()
    outputs: dict[str, str] = {}
    for args in (["health", "--url", url], ["health", "--json", "--url", url], ["db", "current", "--url", url],
                 ["db", "upgrade", "--url", url],
                 ["report", "security", "--url", url, "--out", str(tmp_path / "out"), "--as-of", AS_OF]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        outputs[" ".join(args[:2])] = result.stdout + result.stderr
    files = sorted(path for path in (tmp_path / "out").rglob("*") if path.is_file())
    assert files
    outputs |= {f"file {path.name}": path.read_text() for path in files}
    # The report's parameters name the database: masked on PostgreSQL; SQLite drops secret parameters.
    assert ("***" if backend == "postgresql" else "/test.db") in outputs["file security.json"]
    broken = (_with_query_secrets(db_url.replace("/test.db", "/missing/nowhere.db")) if backend == "sqlite"
              else _with_query_secrets(db_url, api_token="Tok3n-" + QUERY_PASSWORD))  # psycopg refuses the option
    for args in (["health", "--url", broken], ["report", "pnl", "--url", broken, "--out", str(tmp_path / "x")]):
        result = runner.invoke(app, args)
        assert result.exit_code == 3, result.output
        outputs[f"error {args[0]}"] = result.stdout + result.stderr
    engine = create_engine(url)
    try:
        outputs |= {"repr(engine)": repr(engine), "str(engine.url)": str(engine.url),
                    "health_check": repr(sx.db.health_check(engine))}
    finally:
        engine.dispose()
    outputs["mask_url"] = mask_url(url) + mask_url(broken)
    leaks = [(where, secret) for where, text in outputs.items() for secret in secrets if secret in text]
    assert not leaks, leaks
    # A message that quotes the raw URL (a library's, a notebook cell's) is redacted on the way out.
    assert not [secret for secret in secrets if secret in sx.db.redact(f"cannot open {url}")]


@pytest.mark.parametrize("backend", ["postgresql"])
def test_secret_query_parameters_stay_out_of_every_engine_rendering(backend, db_url, debug_logs):
    """?sslpassword= (any secret query parameter) on a PostgreSQL URL: no rendering of a sync or
    async engine shows it, nor the logs of connecting with echo on; yet the driver, the async
    driver, the loaders' DuckDB transport and the migrations still receive it."""
    import asyncio

    from shivx_analytics.frames.transport_duckdb import _libpq_uri

    url = _with_query_secrets(db_url)
    secrets = (QUERY_PASSWORD, QUERY_SSL_PASSWORD, quote(QUERY_SSL_PASSWORD, safe=""))
    engine, async_engine = create_engine(url, echo=True), sx.db.create_async_engine(url)
    try:
        shown = {"repr(engine)": repr(engine), "str(engine.url)": str(engine.url), "repr(engine.url)": repr(engine.url),
                 "engine.url.render_as_string()": engine.url.render_as_string(),
                 "async repr": repr(async_engine), "async str(url)": str(async_engine.url),
                 "async render": async_engine.url.render_as_string(), "mask_url": mask_url(engine.url)}
        with engine.connect() as connection:  # the driver gets it, as libpq's keyword
            options = {o.keyword: o.val for o in connection.connection.dbapi_connection.pgconn.info}
        assert options[b"sslpassword"] == QUERY_SSL_PASSWORD.encode()

        async def connect() -> int:
            try:
                async with async_engine.connect() as connection:
                    return (await connection.execute(sa.text("SELECT 1"))).scalar_one()
            finally:
                await async_engine.dispose()

        assert asyncio.run(connect()) == 1  # asyncpg reads it from the DSN of its connect_args
        assert f"sslpassword={quote(QUERY_SSL_PASSWORD, safe='')}" in _libpq_uri(engine.url)
        assert sx.load_orders(engine).empty and sx.load_orders(url).empty  # DuckDB connects with it
        shown["logs"] = debug_logs()
        leaks = [(where, secret) for where, text in shown.items() for secret in secrets if secret in text]
        assert not leaks, leaks
    finally:
        engine.dispose()
    # A parameter libpq does not know reaches it from every path (refused there), its value shown nowhere.
    broken = _with_query_secrets(db_url, api_token="Tok3n-" + QUERY_PASSWORD)
    broken_engine = create_engine(broken)
    try:
        assert "Tok3n-" not in repr(broken_engine) + str(broken_engine.url)
        for load in (lambda: sx.load_orders(broken_engine), lambda: sx.load_orders(broken),
                     lambda: broken_engine.connect(), lambda: sx.migrate(broken)):
            with pytest.raises(Exception, match="api_token") as raised:
                load()
            assert "Tok3n-" not in str(raised.value)
    finally:
        broken_engine.dispose()


@pytest.mark.slow
def test_notebook_exports_and_errors_mask_query_string_secrets(tmp_path):
    """`notebook run --url ...?password=`: the HTML (its report shows the database it read) and
    the error of a cell that prints the URL show neither secret."""
    import nbformat

    database = tmp_path / "notebook.db"
    sx.migrate(f"sqlite:///{database}")
    url = _with_query_secrets(f"sqlite:///{database}")
    parameters = nbformat.v4.new_code_cell("database_url = None")
    parameters.metadata["tags"] = ["parameters"]
    kernel = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    cells = {"shows": ["import shivx_analytics as sx\nengine = sx.connect(database_url)\nsx.db.health_check(engine)",
                       "sx.security_report(engine, as_of='2025-10-28')"],
             "raises": ["raise RuntimeError('cannot use ' + database_url)"]}
    outputs = {}
    for name, sources in cells.items():
        notebook = nbformat.v4.new_notebook(metadata=kernel)
        notebook.cells = [parameters] + [nbformat.v4.new_code_cell(source) for source in sources]
        nbformat.write(notebook, tmp_path / f"{name}.ipynb")
        result = CliRunner().invoke(app, ["notebook", "run", str(tmp_path / f"{name}.ipynb"), "--url", url,
                                          "--out", str(tmp_path / f"{name}.html")])
        assert result.exit_code == (0 if name == "shows" else 4), result.output
        outputs[name] = result.stdout + result.stderr
    outputs["html"] = (tmp_path / "shows.html").read_text()
    assert "security" in outputs["html"].lower() and "cannot use sqlite:///" in outputs["raises"]
    leaks = [(where, secret) for where, text in outputs.items()
             for secret in (QUERY_PASSWORD, QUERY_SSL_PASSWORD) if secret in text]
    assert not leaks, leaks
