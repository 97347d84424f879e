"""Bad input, generated (hypothesis): every invalid value is refused with a message naming its
field or argument, every valid one is accepted, and nothing reaches the database that could
change it.

- validators: money (digits, places, sign), usernames, emails, passwords, enums, timestamps;
- loaders: filter values and ``columns=`` (unicode, quotes, SQL fragments, NUL, unpaired
  surrogates, lists of 5,000 values) on SQLite and PostgreSQL: a ValueError or exactly the rows
  a pandas filter of the whole table gives, and the tables unchanged afterwards;
- the CLI (in process): bad --since/--until/--as-of/--format/--starting-capital/report names/
  --scale exit 2 with a message, before any connection is made.

Every generated input is counted (INPUTS); the module prints the total at the end.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import string
import uuid
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pandas as pd
import pytest
import sqlalchemy as sa
from _databases import IN_CI, create_postgres_database, drop_postgres_database, require_backend
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy.dialects import postgresql
from typer.testing import CliRunner

import shivx_analytics as sx
from shivx_analytics.cli import FORMATS, REPORT_NAMES, app
from shivx_analytics.db import create_engine
from shivx_analytics.demo import SCALES
from shivx_analytics.demo.vocabulary import TOKENS
from shivx_analytics.frames import FRAME_COLUMNS
from shivx_analytics.models import (
    OrderAction,
    OrderCreate,
    OrderStatus,
    OrderType,
    PositionCreate,
    PositionStatus,
    UserCreate,
)
from shivx_analytics.types import UTCDateTime, to_money

AS_OF = "2025-10-28"
INPUTS: Counter[str] = Counter()
CHECKED: Counter[str] = Counter()  # of the loader inputs, those answered with rows (compared with pandas)
# CI explores the same examples on every run (derandomize); elsewhere each run explores new ones.
FAST = settings(max_examples=200, deadline=None, derandomize=IN_CI)
DATABASE = settings(max_examples=60, deadline=None, derandomize=IN_CI, suppress_health_check=[HealthCheck.too_slow])
UNREACHABLE = "postgresql://analyst:pw@127.0.0.1:1/nowhere"  # valid arguments end at exit code 3 here


@pytest.fixture(scope="module", autouse=True)
def _print_input_count(request):
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None and INPUTS:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\ntest_fuzz: {sum(INPUTS.values())} inputs tried: "
                                + ", ".join(f"{n} {kind}" for kind, n in sorted(INPUTS.items()))
                                + "".join(f"; {n} {kind}" for kind, n in CHECKED.items()))


# Validators -----------------------------------------------------------------------------------

POSITION = {"user_id": uuid.uuid4(), "token": "SOL", "size": Decimal("1"), "entry_price": Decimal("1"),
            "current_price": Decimal("1")}
MONEY_FIELDS = ("size", "entry_price", "current_price", "stop_loss", "take_profit")


def fits_money(value: Decimal) -> bool:
    """The spec, independently: finite, at most 12 integer digits and 8 decimals (trailing zeros free)."""
    if not value.is_finite():
        return False
    sign, digits, exponent = value.normalize().as_tuple() if value else (0, (0,), 0)
    places = max(0, -exponent)
    integer_digits = max(0, len(digits) + exponent)
    return places <= 8 and integer_digits <= 12


decimals = st.builds(
    lambda sign, digits, places: Decimal(f"{sign}{digits}").scaleb(-places),
    st.sampled_from(["", "-"]), st.integers(0, 10**22), st.integers(-4, 14),
) | st.decimals(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [Decimal("0"), Decimal("-0"), Decimal("1E-8"), Decimal("1E-9"), Decimal("999999999999.99999999"),
     Decimal("1E+12"), Decimal("1.000000000000"), Decimal("1E+11")])


def field_named(error: ValidationError, field: str) -> bool:
    return any(item["loc"][:1] == (field,) for item in error.errors()) and field in str(error)


@FAST
@given(field=st.sampled_from(MONEY_FIELDS), value=decimals)
def test_money_fields_accept_exactly_what_fits_numeric_20_8(field, value):
    INPUTS["money"] += 1
    valid = fits_money(value) and value > 0
    try:
        position = PositionCreate(**(POSITION | {field: value}))
    except ValidationError as error:
        assert not valid, (value, error)
        assert field_named(error, field)
    else:
        assert valid, value
        assert getattr(position, field) == value  # never rounded


@FAST
@given(value=decimals | st.text(max_size=30) | st.floats() | st.booleans() | st.integers())
def test_to_money_and_the_money_column_refuse_with_a_message_or_keep_the_value(value):
    INPUTS["money (column type)"] += 1
    try:
        number = to_money(value)
    except ValueError as error:
        assert str(error)
        assert isinstance(value, (float, bool)) or not _parses_and_fits(value)
    else:
        assert not isinstance(value, (float, bool)) and fits_money(number)
        assert number == Decimal(str(value).strip()) if not isinstance(value, Decimal) else number == value


def _parses_and_fits(value) -> bool:
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except ArithmeticError:
        return False
    return fits_money(number)


USERNAME = re.compile(r"[A-Za-z0-9_.-]{3,32}")
username_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=40) | st.text(
    alphabet=string.ascii_letters + string.digits + "_.-\n\t $'\"", max_size=40)


@FAST
@given(username=username_text)
def test_usernames_are_3_to_32_of_letters_digits_and_underscore_dot_dash(username):
    INPUTS["username"] += 1
    valid = USERNAME.fullmatch(username) is not None
    try:
        UserCreate(username=username, email="someone@example.com", password="correct horse")
    except ValidationError as error:
        assert not valid, username
        assert field_named(error, "username")
    else:
        assert valid, username


local_parts = st.text(alphabet=string.ascii_letters + string.digits + "._+-", min_size=1, max_size=20).filter(
    lambda s: not s.startswith(".") and not s.endswith(".") and ".." not in s)
domains = st.lists(st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=10),
                   min_size=1, max_size=3).map(".".join).map(lambda d: f"{d}.example")


@FAST
@given(local=local_parts, domain=domains, shout=st.booleans())
def test_well_formed_emails_are_accepted_and_stored_lower_case(local, domain, shout):
    INPUTS["email"] += 1
    address = f"{local}@{domain}"
    address = address.upper() if shout else address
    assert UserCreate(username="someone", email=address, password="correct horse").email == address.lower()


@FAST
@given(text=st.text(max_size=60).filter(lambda s: "@" not in s) | st.sampled_from(
    ["a@b", "@example.com", "a@", "a@@b.example", "a b@example.com", "a@-b.example", "a@b..example",
     "a@[127.0.0.1]", "\"q\"@example.com", "x" * 320 + "@example.com"]))
def test_malformed_emails_are_refused_naming_the_field(text):
    INPUTS["email"] += 1
    with pytest.raises(ValidationError) as raised:
        UserCreate(username="someone", email=text, password="correct horse")
    assert field_named(raised.value, "email")


@FAST
@given(password=st.text(max_size=12) | st.integers(1000, 1100).map(lambda n: "p" * n))
def test_passwords_are_8_to_1024_characters(password):
    INPUTS["password"] += 1
    valid = 8 <= len(password) <= 1024
    try:
        UserCreate(username="someone", email="someone@example.com", password=password)
    except ValidationError as error:
        assert not valid and field_named(error, "password")
    else:
        assert valid


ENUMS = {"action": OrderAction, "order_type": OrderType, "status": PositionStatus}
ORDER = {"user_id": uuid.uuid4(), "token": "SOL", "action": "buy", "amount_in": Decimal("10"), "price": Decimal("2")}
enum_text = st.sampled_from([m.value for e in (*ENUMS.values(), OrderStatus) for m in e]).flatmap(
    lambda v: st.sampled_from([v, v.upper(), v.title(), f" {v}", f"{v} ", v[:-1], f"{v}'--"])) | st.text(max_size=12)


@FAST
@given(field=st.sampled_from(sorted(ENUMS)), value=enum_text)
def test_enum_fields_accept_their_values_only(field, value):
    INPUTS["enum"] += 1
    members = ENUMS[field]
    valid = value in {m.value for m in members}
    try:
        if field == "status":
            model = PositionCreate(**(POSITION | {"status": value, "closed_at": None if value == "open" else
                                                  datetime(2025, 1, 2, tzinfo=timezone.utc),
                                                  "opened_at": datetime(2025, 1, 1, tzinfo=timezone.utc)}))
        else:
            model = OrderCreate(**(ORDER | {field: value}))
    except ValidationError as error:
        assert not valid, value
        assert field_named(error, field)
    else:
        assert valid, value
        assert getattr(model, field) == members(value)


offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
instants = st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2100, 1, 1))


@FAST
@given(moment=instants, zone=st.none() | offsets, field=st.sampled_from(["opened_at", "closed_at"]))
def test_timestamps_must_be_aware_and_are_kept_in_utc(moment, zone, field):
    INPUTS["timestamp"] += 1
    value = moment if zone is None else moment.replace(tzinfo=zone)
    other = {"opened_at": datetime(1900, 1, 1, tzinfo=timezone.utc)} if field == "closed_at" else {}
    fields = POSITION | other | {field: value, "status": "closed" if field == "closed_at" else "open"}
    if zone is None:
        with pytest.raises(ValidationError) as raised:
            PositionCreate(**fields)
        assert field_named(raised.value, field)
        with pytest.raises(ValueError, match="naive"):
            UTCDateTime().process_bind_param(value, postgresql.dialect())
    else:
        stored = getattr(PositionCreate(**fields), field)
        assert stored.utcoffset() == timedelta(0) and stored == value


# Loaders ------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def demo(request, migrated_templates, tmp_path_factory):
    """The small demo on each backend, loaded whole once: the reference every filter is checked against."""
    backend = request.param
    require_backend(backend)
    if backend == "sqlite":
        path = tmp_path_factory.mktemp("fuzz") / "fuzz.db"
        shutil.copyfile(migrated_templates["sqlite"], path)
        url = f"sqlite:///{path}"
    else:
        url = create_postgres_database(template=migrated_templates["postgresql"])
    try:
        sx.generate_demo_data(url, seed=0, scale="small", as_of=AS_OF)
        fingerprint = table_fingerprint(url)
        yield {"url": url, "orders": sx.load_orders(url), "audit_logs": sx.load_audit_logs(url),
               "positions": sx.load_positions(url)}
        assert table_fingerprint(url) == fingerprint, "the fuzzed loads changed the database"
    finally:
        if backend == "postgresql":
            drop_postgres_database(url)


def table_fingerprint(url: str) -> dict[str, tuple[int, str]]:
    """Row count and a digest of every row of every table."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            out = {}
            for table in ("users", "api_keys", "positions", "orders", "security_audit_logs"):
                rows = connection.execute(sa.text(f"SELECT * FROM {table}")).all()
                digest = hashlib.sha256("\n".join(sorted(map(repr, rows))).encode()).hexdigest()
                out[table] = (len(rows), digest)
            return out
    finally:
        engine.dispose()


SQL_FRAGMENTS = ["'", "''", '"', "\\", "%", "_", ";", "--", "/*", "*/", "' OR '1'='1", "' OR 1=1 --",
                 "'; DROP TABLE orders; --", "\"; DELETE FROM users; --", "$1", "?", ":name", "%(x)s", "NULL",
                 "\x00", "a\x00b", "\ud800", "x\udfffy", "", " ", "\u202e", "😀", "SOL\n", "sol"]
TOKEN_NAMES = [token[0] for token in TOKENS]
texts = st.sampled_from(SQL_FRAGMENTS + TOKEN_NAMES) | st.text(max_size=20)
huge_lists = st.lists(texts, min_size=1, max_size=4).map(
    lambda seeds: [f"{seeds[i % len(seeds)]}{i}" for i in range(4_990)] + TOKEN_NAMES[:10])
filter_values = (texts | st.lists(texts, max_size=8) | st.tuples(texts, texts) | huge_lists
                 | st.integers() | st.none() | st.lists(st.integers() | st.none() | st.binary(max_size=3), min_size=1,
                                                      max_size=3))


def as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def bad_text(item) -> bool:
    return not isinstance(item, str) or "\x00" in item or any(0xD800 <= ord(c) <= 0xDFFF for c in item)


def expect_rows(frame: pd.DataFrame, reference: pd.DataFrame, keep: pd.Series, id_column: str) -> None:
    assert frame[id_column].tolist() == reference.loc[keep, id_column].tolist()


@pytest.mark.slow
@DATABASE
@given(value=filter_values)
def test_text_filters_give_a_value_error_or_exactly_the_matching_rows(demo, value):
    INPUTS["loader text filter"] += 1
    if value is None:
        return
    wanted = as_list(value)
    try:
        frame = sx.load_orders(demo["url"], token=value)
    except ValueError as error:
        assert any(bad_text(item) for item in wanted), (value, error)
        assert "token" in str(error)
        return
    assert not any(bad_text(item) for item in wanted)
    reference = demo["orders"]
    expect_rows(frame, reference, reference["token"].astype(object).isin(wanted), "order_id")
    CHECKED["loader results compared row by row"] += 1


enum_filters = st.sampled_from([("status", OrderStatus), ("action", OrderAction), ("order_type", OrderType)])


@pytest.mark.slow
@DATABASE
@given(target=enum_filters, value=st.lists(enum_text, min_size=1, max_size=4) | enum_text | huge_lists
       | st.lists(st.sampled_from([m.value for e in (OrderStatus, OrderAction, OrderType) for m in e]), max_size=4))
def test_enum_filters_give_a_value_error_naming_the_choices_or_the_matching_rows(demo, target, value):
    INPUTS["loader enum filter"] += 1
    argument, members = target
    valid = {m.value for m in members}
    wanted = as_list(value)
    try:
        frame = sx.load_orders(demo["url"], **{argument: value})
    except ValueError as error:
        assert not set(wanted) <= valid
        assert argument in str(error) and all(v in str(error) for v in valid)
        return
    assert set(wanted) <= valid
    reference = demo["orders"]
    expect_rows(frame, reference, reference[argument].astype(object).isin(wanted), "order_id")
    CHECKED["loader results compared row by row"] += 1


@pytest.mark.slow
@DATABASE
@given(data=st.data())
def test_id_filters_give_a_value_error_or_the_rows_of_those_ids(demo, data):
    INPUTS["loader id filter"] += 1
    reference = demo["orders"]
    known = reference["user_id"].dropna().unique().tolist()
    ids = st.sampled_from(known) | st.uuids().map(str) | st.uuids().map(lambda u: u.hex.upper()) | texts
    value = data.draw(ids | st.lists(ids, max_size=5) | huge_lists)
    wanted = as_list(value)

    def parses(item):
        try:
            uuid.UUID(str(item))
        except ValueError:
            return False
        return True
    try:
        frame = sx.load_orders(demo["url"], user_id=value)
    except ValueError as error:
        assert not all(parses(item) for item in wanted) and "user_id" in str(error)
        return
    wanted_ids = {str(uuid.UUID(str(item))) for item in wanted}
    expect_rows(frame, reference, reference["user_id"].astype(object).isin(wanted_ids), "order_id")
    CHECKED["loader results compared row by row"] += 1


@pytest.mark.slow
@DATABASE
@given(value=st.booleans() | st.sampled_from(["true", "False", 1, 0, "1", "yes"]) | st.lists(st.booleans(), max_size=3))
def test_the_success_flag_takes_booleans_only(demo, value):
    INPUTS["loader bool filter"] += 1
    wanted = as_list(value)
    try:
        frame = sx.load_audit_logs(demo["url"], success=value)
    except ValueError as error:
        assert not all(isinstance(item, bool) for item in wanted) and "success" in str(error)
        return
    reference = demo["audit_logs"]
    expect_rows(frame, reference, reference["success"].isin(wanted), "log_id")
    CHECKED["loader results compared row by row"] += 1


column_names = st.sampled_from(FRAME_COLUMNS["orders"] + ("password_hash", "key_hash", "ORDER_ID", "*", "1",
                                                          "order_id; DROP TABLE orders", "token --"))


@pytest.mark.slow
@DATABASE
@given(columns=st.lists(column_names | st.text(max_size=12), max_size=6) | column_names
       | st.lists(st.sampled_from(FRAME_COLUMNS["orders"]), min_size=1, max_size=8))
def test_columns_come_from_the_allow_list_or_a_value_error_lists_it(demo, columns):
    INPUTS["loader columns"] += 1
    requested = [columns] if isinstance(columns, str) else columns
    allowed = set(FRAME_COLUMNS["orders"])
    try:
        frame = sx.load_orders(demo["url"], columns=columns, status="executed")
    except ValueError as error:
        assert not requested or not set(requested) <= allowed
        assert "choose from" in str(error) and "order_id" in str(error)
        return
    assert list(frame.columns) == list(dict.fromkeys(requested))
    assert len(frame) == int((demo["orders"]["status"] == "executed").sum())
    CHECKED["loader results compared row by row"] += 1


def instant(value) -> datetime:
    """The window's reading of since/until, independently: naive means UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip())
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


window_moments = (instants.map(lambda d: d.replace(microsecond=0))
                  | st.datetimes(min_value=datetime(2025, 7, 1), max_value=datetime(2025, 11, 1), timezones=st.none() | offsets)
                  | st.dates(min_value=date(2025, 7, 1), max_value=date(2025, 11, 1)))
window_values = window_moments | window_moments.map(lambda d: d.isoformat()) | texts | st.integers()


@pytest.mark.slow
@DATABASE
@given(since=st.none() | window_values, until=st.none() | window_values)
def test_windows_give_a_value_error_naming_the_argument_or_the_rows_inside(demo, since, until):
    INPUTS["loader window"] += 1
    try:
        frame = sx.load_orders(demo["url"], since=since, until=until, columns=["order_id", "created_at"])
    except ValueError as error:
        assert "since" in str(error) or "until" in str(error)
        try:
            low, high = (None if v is None else instant(v) for v in (since, until))
        except (ValueError, TypeError, AttributeError, OverflowError):
            return  # unparseable: right to refuse
        assert low is not None and high is not None and low > high, (since, until, error)
        return
    reference = demo["orders"]
    keep = pd.Series(True, index=reference.index)
    if since is not None:
        keep &= reference["created_at"] >= pd.Timestamp(instant(since))
    if until is not None:
        keep &= reference["created_at"] < pd.Timestamp(instant(until))
    expect_rows(frame, reference, keep, "order_id")
    CHECKED["loader results compared row by row"] += 1


# The CLI ------------------------------------------------------------------------------------

runner = CliRunner()
DATE_SAMPLE: set[str] = set()  # the valid dates generated so far, to tell them from random text
dates = (st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.none() | offsets)
         .map(lambda d: d.isoformat()) | st.dates(min_value=date(2000, 1, 1), max_value=date(2199, 12, 31)).map(str)).map(
    lambda text: DATE_SAMPLE.add(text) or text)
cli_text = st.text(max_size=25) | st.sampled_from(
    ["NaT", "nan", "-1", "0", "1e400", "2025-13-01", "2025-02-30", "9999-12-31T23:59:59-10:00",
     "0001-01-01T00:00:00+05:00", "2025-10-28T25:00", "'; DROP TABLE orders; --", "\x00", "--url", "-"])


def valid_format(text: str) -> bool:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    return bool(parts) and set(parts) <= set(FORMATS)


def valid_capital(text: str) -> bool:
    try:
        return to_money(text) > 0
    except ValueError:
        return False


@pytest.mark.slow
@FAST
@given(since=st.none() | dates | cli_text, until=st.none() | dates | cli_text, as_of=st.none() | dates | cli_text,
       formats=st.none() | st.sampled_from(["html", "json,csv", "html, json", "csv,csv"]) | cli_text,
       capital=st.none() | st.sampled_from(["1000", "0.00000001", "0", "-5"]) | cli_text,
       names=st.lists(st.sampled_from([*REPORT_NAMES, "all"]) | cli_text, max_size=3))
def test_report_arguments_exit_2_with_a_message_or_go_on_to_the_database(since, until, as_of, formats, capital, names):
    INPUTS["cli report arguments"] += 1
    options = {"--since": since, "--until": until, "--as-of": as_of, "--format": formats, "--starting-capital": capital}
    args = ["report", "--url", UNREACHABLE, "--out", "/nonexistent/never-written"]
    args += [f"{name}={value}" for name, value in options.items() if value is not None]
    result = runner.invoke(app, [*args, "--", *names])
    assert result.exit_code in (2, 3), (args, names, result.exit_code, result.output, result.exception)
    known_bad = ((formats is not None and not valid_format(formats))
                 or (capital is not None and not valid_capital(capital))
                 or any(name not in (*REPORT_NAMES, "all") for name in names))
    valid_dates = all(value is None or value in DATE_SAMPLE for value in (since, until, as_of))
    if known_bad:
        assert result.exit_code == 2
    elif valid_dates:
        assert result.exit_code == 3  # every argument parsed: the (unreachable) database is next
    if result.exit_code == 2:
        assert result.stderr.startswith("error: ") or "Usage:" in result.output
        assert "Traceback" not in result.output



@pytest.mark.slow
@FAST
@given(option=st.sampled_from(["--since", "--until", "--as-of"]), value=cli_text)
def test_a_bad_date_exits_2_naming_the_option(option, value):
    INPUTS["cli dates"] += 1
    result = runner.invoke(app, ["report", "--url", UNREACHABLE, f"{option}={value}"])
    assert result.exit_code in (2, 3), (value, result.output, result.exception)
    if result.exit_code == 2:
        assert result.stderr.startswith(f"error: {option}: ")


@pytest.mark.slow
@FAST
@given(scale=st.sampled_from([*SCALES, "19", "20", "1000", "-5", "1e3", "small ", "LARGE"]) | st.text(max_size=10),
       as_of=st.none() | dates | cli_text)
def test_seed_arguments_exit_2_with_a_message_or_go_on_to_the_database(scale, as_of):
    INPUTS["cli seed arguments"] += 1
    args = ["seed", "--url", UNREACHABLE, f"--scale={scale}"] + ([] if as_of is None else [f"--as-of={as_of}"])
    result = runner.invoke(app, args)
    assert result.exit_code in (2, 3), (args, result.output, result.exception)
    valid_scale = scale in SCALES or (scale.strip().isdecimal() and int(scale.strip()) >= 20)
    if not valid_scale:
        assert result.exit_code == 2 and "scale" in result.stderr
    elif as_of is None or as_of in DATE_SAMPLE:
        assert result.exit_code == 3

