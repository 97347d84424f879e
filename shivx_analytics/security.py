"""Password hashing and API keys: standard library only, no database.

Passwords: PBKDF2-HMAC-SHA256, 600,000 iterations, a 16-byte random salt, stored as the
self-describing ``pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>``. The seed's legacy
``<hash hex>:<salt hex>`` form (100,000 iterations) still verifies and asks for a re-hash.

API keys: ``shx_`` + 43 URL-safe characters from 32 random bytes; only SHA-256 hex of the
whole key is stored, with a short non-secret prefix to recognise it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = [
    "PASSWORD_ITERATIONS",
    "MAX_PASSWORD_LENGTH",
    "API_KEY_PREFIX",
    "hash_password",
    "verify_password",
    "password_needs_rehash",
    "generate_api_key",
    "hash_api_key",
    "api_key_display_prefix",
]

PASSWORD_ALGORITHM = "pbkdf2_sha256"
PASSWORD_ITERATIONS = 600_000
LEGACY_ITERATIONS = 100_000
SALT_BYTES = 16
MAX_PASSWORD_LENGTH = 1024
API_KEY_PREFIX = "shx_"
API_KEY_BYTES = 32
DISPLAY_PREFIX_LENGTH = len(API_KEY_PREFIX) + 8


def hash_password(password: str, *, iterations: int = PASSWORD_ITERATIONS) -> str:
    """Hash ``password`` with a fresh salt: ``pbkdf2_sha256$<iterations>$<salt>$<hash>``."""
    _check_password(password)
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _pbkdf2(password, salt, iterations)
    return f"{PASSWORD_ALGORITHM}${iterations}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """True if ``password`` matches ``stored`` (current or legacy format); constant-time compare."""
    if not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH:
        return False
    parsed = _parse(stored)
    if parsed is None:
        return False
    iterations, salt, expected = parsed
    return hmac.compare_digest(_pbkdf2(password, salt, iterations), expected)


def password_needs_rehash(stored: str) -> bool:
    """True if ``stored`` uses the legacy format or fewer iterations than today's."""
    parsed = _parse(stored)
    return parsed is None or not stored.startswith(PASSWORD_ALGORITHM + "$") or parsed[0] < PASSWORD_ITERATIONS


def generate_api_key() -> tuple[str, str]:
    """A new API key: ``(plaintext, key_hash)``. Show the plaintext once; store only the hash."""
    plaintext = API_KEY_PREFIX + secrets.token_urlsafe(API_KEY_BYTES)
    return plaintext, hash_api_key(plaintext)


def hash_api_key(plaintext: str) -> str:
    """SHA-256 hex of the whole key (keys are high-entropy, so no salt or stretching is needed)."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def api_key_display_prefix(plaintext: str) -> str:
    """The non-secret start of a key (``shx_`` + 8 characters), stored to recognise it."""
    return plaintext[:DISPLAY_PREFIX_LENGTH]


def _check_password(password: str) -> None:
    if not isinstance(password, str):
        raise TypeError(f"password must be a str, not {type(password).__name__}")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"password is {len(password)} characters long; the maximum is {MAX_PASSWORD_LENGTH}")


def _pbkdf2(password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)


def _parse(stored: str) -> tuple[int, bytes, bytes] | None:
    """(iterations, salt, hash) of a stored hash in either format, or None if malformed."""
    if not isinstance(stored, str):
        return None
    try:
        if stored.startswith(PASSWORD_ALGORITHM + "$"):
            _, iterations, salt, digest = stored.split("$")
            if int(iterations) < 1:  # pbkdf2_hmac would raise: a corrupt hash must not verify, nor crash
                return None
            return int(iterations), bytes.fromhex(salt), bytes.fromhex(digest)
        digest, salt = stored.split(":")
        return LEGACY_ITERATIONS, bytes.fromhex(salt), bytes.fromhex(digest)
    except ValueError:
        return None
