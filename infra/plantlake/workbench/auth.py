"""Workbench logins and CSRF tokens (workbench layer): scrypt password hashes, constant-time checks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from plantlake.core.config import WorkbenchUser

PLANNER = "planner"
# scrypt cost: n=2**14, r=8 needs 16 MiB and about 50 ms per check, the usual interactive-login
# setting (RFC 7914). The parameters travel in the hash, so raising them later keeps old hashes.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES, HASH_BYTES = 16, 32
# Refuse parameters from a hash that would need more memory than this (OpenSSL's default cap is
# 32 MiB); a malformed or hostile hash then fails the check instead of exhausting memory.
MAX_MEMORY = 64 * 1024 * 1024


@dataclass(frozen=True)
class User:
    """A logged-in workbench user."""

    name: str
    role: str

    @property
    def can_decide(self) -> bool:
        """Only planners release, confirm, note and give work-order feedback."""
        return self.role == PLANNER


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, size: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=MAX_MEMORY, dklen=size
    )


def hash_password(password: str) -> str:
    """A salted scrypt hash, as "scrypt$n$r$p$salt_b64$hash_b64" (what the settings hold)."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, HASH_BYTES)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, password_hash: str) -> bool:
    """Whether `password` matches `password_hash`, compared in constant time; False for a
    malformed hash (wrong scheme, bad base64, parameters scrypt refuses)."""
    try:
        scheme, n, r, p, salt, digest = password_hash.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest, validate=True)
        actual = _scrypt(
            password, base64.b64decode(salt, validate=True), int(n), int(r), int(p), len(expected)
        )
    except (ValueError, MemoryError, OverflowError):
        return False
    return bool(expected) and hmac.compare_digest(actual, expected)


# What an unknown user name is checked against: the hash of a random password nobody kept.
_DECOY_HASH = (
    "scrypt$16384$8$1$5Zo6WZGEXVmH1opjcCoV+g==$apvUf1sserhSjePI/AjM1bpPhZtyvhbvg+7Ij4nfuHk="
)


def authenticate(users: Mapping[str, WorkbenchUser], name: str, password: str) -> User | None:
    """The user `name` when `password` is theirs, else None.

    An unknown name still costs one scrypt check, so response times do not tell which user
    names exist.
    """
    user = users.get(name)
    if user is None:
        verify_password(password, _DECOY_HASH)
        return None
    if not verify_password(password, user.password_hash):
        return None
    return User(name=name, role=user.role)


def new_csrf_token() -> str:
    """A fresh random token for a session's forms."""
    return secrets.token_urlsafe(32)


def csrf_matches(expected: str | None, submitted: str | None) -> bool:
    """Whether a submitted CSRF token is the session's (constant time; missing never matches)."""
    if not expected or not submitted:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), submitted.encode("utf-8"))
