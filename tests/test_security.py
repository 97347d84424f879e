"""Password hashing and API keys (no database), and one database check: an API key's
plaintext is stored nowhere."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets

import pytest
import sqlalchemy as sa
from sqlmodel import Session

import shivx_analytics.models.user as user_module
from shivx_analytics.models import APIKeyCreate, SecurityAuditLog, UserCreate, build_api_key, build_user
from shivx_analytics.security import (
    MAX_PASSWORD_LENGTH,
    PASSWORD_ITERATIONS,
    api_key_display_prefix,
    generate_api_key,
    hash_api_key,
    hash_password,
    password_needs_rehash,
    verify_password,
)

PASSWORD = "correct horse battery staple"
HASH_FORMAT = re.compile(r"pbkdf2_sha256\$600000\$[0-9a-f]{32}\$[0-9a-f]{64}")


@pytest.fixture(scope="module")
def current_hash() -> str:
    """One hash at today's 600,000 iterations (about 0.3 s), shared by the tests that need it."""
    return hash_password(PASSWORD)


def legacy_hash(password: str, salt: bytes) -> str:
    """The seed's stored form: PBKDF2-HMAC-SHA256, 100,000 iterations, ``<hash hex>:<salt hex>``."""
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 100_000).hex() + ":" + salt.hex()


# Passwords

def test_hash_is_self_describing_pbkdf2_sha256_with_600000_iterations(current_hash):
    assert PASSWORD_ITERATIONS == 600_000
    assert HASH_FORMAT.fullmatch(current_hash)


def test_hash_is_pbkdf2_hmac_sha256_of_the_password_with_the_stored_salt(current_hash):
    _, iterations, salt, digest = current_hash.split("$")
    assert hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), bytes.fromhex(salt), int(iterations)).hex() == digest


def test_each_hash_gets_a_fresh_salt():
    hashes = [hash_password(PASSWORD, iterations=1_000) for _ in range(5)]
    assert len({h.split("$")[2] for h in hashes}) == 5
    assert len(set(hashes)) == 5


def test_correct_password_verifies(current_hash):
    assert verify_password(PASSWORD, current_hash)


def test_wrong_password_does_not_verify(current_hash):
    assert not verify_password(PASSWORD + "!", current_hash)


def test_current_hash_needs_no_rehash(current_hash):
    assert not password_needs_rehash(current_hash)


def test_legacy_hash_colon_salt_verifies_and_needs_rehash():
    stored = legacy_hash(PASSWORD, secrets.token_bytes(16))
    assert verify_password(PASSWORD, stored)
    assert not verify_password("wrong password", stored)
    assert password_needs_rehash(stored)


def test_hash_with_an_older_iteration_count_verifies_and_needs_rehash():
    stored = hash_password(PASSWORD, iterations=1_000)
    assert stored.startswith("pbkdf2_sha256$1000$")
    assert verify_password(PASSWORD, stored)
    assert password_needs_rehash(stored)


@pytest.mark.parametrize("stored", ["", "garbage", "pbkdf2_sha256$x$00$00", "zz:zz", "pbkdf2_sha256$1000$00",
                                    "pbkdf2_sha256$0$00$00", "pbkdf2_sha256$-5$00$00"])
def test_malformed_stored_hash_never_verifies_and_needs_rehash(stored):
    assert not verify_password(PASSWORD, stored)
    assert password_needs_rehash(stored)


def test_password_over_1024_characters_is_refused_before_hashing():
    with pytest.raises(ValueError, match="1024"):
        hash_password("x" * (MAX_PASSWORD_LENGTH + 1))


def test_password_of_exactly_1024_characters_is_accepted():
    assert verify_password("x" * MAX_PASSWORD_LENGTH, hash_password("x" * MAX_PASSWORD_LENGTH, iterations=1))


def test_verifying_a_password_over_1024_characters_returns_false():
    long_password = "x" * (MAX_PASSWORD_LENGTH + 1)
    stored = "pbkdf2_sha256$1$" + "00" * 16 + "$" + hashlib.pbkdf2_hmac(
        "sha256", long_password.encode(), bytes(16), 1).hex()  # would match if the length were not checked
    assert not verify_password(long_password, stored)


def test_verification_compares_digests_in_constant_time(monkeypatch):
    calls = []
    real_compare_digest = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real_compare_digest(a, b))
    assert verify_password(PASSWORD, hash_password(PASSWORD, iterations=1_000))
    assert len(calls) == 1


# API keys

def test_api_key_has_the_shx_prefix_and_at_least_32_random_bytes():
    plaintext, _ = generate_api_key()
    assert plaintext.startswith("shx_")
    body = plaintext.removeprefix("shx_")
    assert re.fullmatch(r"[A-Za-z0-9_-]+", body)
    assert len(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))) >= 32


def test_api_key_hash_is_sha256_hex_of_the_whole_key():
    plaintext, key_hash = generate_api_key()
    assert key_hash == hashlib.sha256(plaintext.encode()).hexdigest() == hash_api_key(plaintext)
    assert re.fullmatch(r"[0-9a-f]{64}", key_hash)


def test_api_keys_are_unique():
    keys = [generate_api_key()[0] for _ in range(100)]
    assert len(set(keys)) == 100


def test_api_key_display_prefix_is_short_and_not_the_secret():
    plaintext, _ = generate_api_key()
    prefix = api_key_display_prefix(plaintext)
    assert plaintext.startswith(prefix) and prefix.startswith("shx_") and len(prefix) <= 16
    assert len(plaintext) - len(prefix) >= 32  # the rest (>= 32 characters, ~190 bits) stays secret


def test_api_key_plaintext_appears_nowhere_in_the_database(backend, engine, monkeypatch):
    monkeypatch.setattr(user_module, "hash_password", functools.partial(hash_password, iterations=1_000))
    with Session(engine) as session:
        user = build_user(UserCreate(username="alice", email="alice@example.com", password=PASSWORD))
        session.add(user)
        session.flush()
        plaintext, key = build_api_key(APIKeyCreate(user_id=user.user_id, name="bot", permissions={"trade": True}))
        session.add(key)
        session.add(SecurityAuditLog.create_entry(event_type="api_key", action="create", success=True,
                                                  user_id=user.user_id, details={"key_id": str(key.key_id)}))
        session.commit()
    secret_part = plaintext[len(api_key_display_prefix(plaintext)):]
    dumped = []
    with engine.connect() as connection:
        for table in sa.inspect(connection).get_table_names():
            rows = connection.execute(sa.text(f'SELECT * FROM "{table}"')).all()
            dumped.extend(str(value) for row in rows for value in row)
    text = "\n".join(dumped)
    assert hash_api_key(plaintext) in text  # the dump does contain the api_keys row
    assert plaintext not in text and secret_part not in text
    assert PASSWORD not in text
