"""Password hashing (argon2id) and the password policy for staff accounts.

Hashing: argon2id with OWASP's minimum recommended parameters (m = 19 MiB, t = 2, p = 1),
chosen for the 2-core servers schools run on: about 30 ms for one login, so that a staff
room signing in at once stays quick (the earlier t = 3, 64 MiB, p = 4 took about 200 ms
alone and over a second each with 8 at once). A hash made with other parameters still
verifies, and `needs_rehash` says it should be made again (at the next successful login).

`dummy_verify` spends the time of one verification against a hash of nothing, for a login
name that has no (active) account: known and unknown names answer in the same time.

The policy (`password_problem`): at least MIN_LENGTH characters; not one of the common
passwords shipped with the product (common_passwords.txt, also with digits or symbols
before or after, in any case, with 0/1/3/4/5/@/$ for letters); not one character
repeated, a run of the keyboard, the alphabet or the digits, or a short piece repeated;
not containing the login name (in any case, or reversed).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 8
# OWASP Password Storage Cheat Sheet: argon2id, m = 19 MiB, t = 2, p = 1.
TIME_COST = 2
MEMORY_KIB = 19 * 1024
PARALLELISM = 1

_hasher = PasswordHasher(time_cost=TIME_COST, memory_cost=MEMORY_KIB, parallelism=PARALLELISM, type=Type.ID)
COMMON_FILE = Path(__file__).with_name("common_passwords.txt")
_RUNS = ("0123456789", "abcdefghijklmnopqrstuvwxyz", "qwertyuiop", "asdfghjkl", "zxcvbnm", "1qaz2wsx3edc4rfv")
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "@": "a", "$": "s", "7": "t"})
_EDGES = re.compile(r"^[\d\W_]+|[\d\W_]+$")


def hash_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise ValueError(f"密码至少 {MIN_LENGTH} 位")
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@cache
def _dummy_hash() -> str:
    return _hasher.hash("anxin: no such account")


def dummy_verify(password: str) -> None:
    """The time of one verification, for a name with no active account (always fails)."""
    verify_password(_dummy_hash(), password)


def needs_rehash(password_hash: str) -> bool:
    """Whether a stored hash was made with other parameters than today's."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return False


@cache
def common_passwords() -> frozenset[str]:
    """The common passwords shipped with the product, lower case."""
    lines = COMMON_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(s.strip().lower() for s in lines if s.strip() and not s.startswith("#"))


def _forms(password: str) -> set[str]:
    """The password and the forms a common one is commonly dressed up in, lower case."""
    low = password.lower()
    forms = {low, low.translate(_LEET)}
    for f in list(forms):
        bare = _EDGES.sub("", f)
        if len(bare) >= 4:
            forms.add(bare)
    return forms


def _is_pattern(low: str) -> bool:
    if len(set(low)) <= 2:  # 11111111, 12121212, abababab
        return True
    for unit in range(1, 5):  # 123123123, abcabcabc
        if len(low) % unit == 0 and low[:unit] * (len(low) // unit) == low:
            return True
    return any(low in run or low in run[::-1] for run in _RUNS)


def password_problem(password: str, username: str | None = None) -> str | None:
    """Why a new password is refused ("short", "common", "pattern", "username"), or None."""
    if len(password) < MIN_LENGTH:
        return "short"
    low = password.lower()
    # The username first: the most specific reason, whatever else the password also is.
    name = (username or "").strip().lower()
    if len(name) >= 3:
        bare = {f for f in _forms(password)} | {low[::-1]}
        if any(name in f for f in bare) or any(_EDGES.sub("", f) == _EDGES.sub("", name) for f in bare):
            return "username"
    if _is_pattern(low):
        return "pattern"
    if _forms(password) & common_passwords():
        return "common"
    return None
