"""Workbench logins: scrypt hashes, constant-time checks, roles and CSRF tokens."""

import pytest

from plantlake.core.config import WorkbenchUser
from plantlake.workbench.auth import (
    User,
    authenticate,
    csrf_matches,
    hash_password,
    new_csrf_token,
    verify_password,
)


@pytest.fixture(scope="module")
def planner_hash():
    return hash_password("correct horse battery")


def test_a_hash_verifies_its_password_only(planner_hash):
    assert planner_hash.startswith("scrypt$16384$8$1$")
    assert verify_password("correct horse battery", planner_hash)
    assert not verify_password("correct horse batterY", planner_hash)
    assert not verify_password("", planner_hash)


def test_each_hash_has_its_own_salt(planner_hash):
    again = hash_password("correct horse battery")
    assert again != planner_hash
    assert again.split("$")[4] != planner_hash.split("$")[4]
    assert verify_password("correct horse battery", again)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "plain-text-password",
        "bcrypt$16384$8$1$c2FsdA==$aGFzaA==",
        "scrypt$16384$8$1$not base64!$aGFzaA==",
        "scrypt$16384$8$1$c2FsdA==",
        "scrypt$x$8$1$c2FsdA==$aGFzaA==",
        "scrypt$16384$8$1$c2FsdA==$",
        "scrypt$1000$8$1$c2FsdA==$aGFzaA==",  # n not a power of two
        "scrypt$1048576$64$1$c2FsdA==$aGFzaA==",  # would need gigabytes
    ],
)
def test_a_malformed_hash_never_verifies(bad):
    assert verify_password("anything", bad) is False


def test_authenticate_returns_the_user_with_their_role(planner_hash):
    users = {
        "ann": WorkbenchUser(password_hash=planner_hash, role="planner"),
        "vic": WorkbenchUser(password_hash=hash_password("viewer pass"), role="viewer"),
    }
    ann = authenticate(users, "ann", "correct horse battery")
    assert ann == User(name="ann", role="planner")
    assert ann.can_decide
    vic = authenticate(users, "vic", "viewer pass")
    assert vic == User(name="vic", role="viewer")
    assert not vic.can_decide
    assert authenticate(users, "ann", "viewer pass") is None
    assert authenticate(users, "nobody", "correct horse battery") is None


def test_csrf_tokens_are_random_and_compared_exactly():
    token = new_csrf_token()
    assert len(token) >= 40
    assert token != new_csrf_token()
    assert csrf_matches(token, token)
    assert not csrf_matches(token, token[:-1])
    assert not csrf_matches(token, token + "x")
    assert not csrf_matches(token, "é" + token[1:])  # non-ASCII does not raise
    assert not csrf_matches(None, token)
    assert not csrf_matches(token, None)
    assert not csrf_matches("", "")
