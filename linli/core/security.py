"""Passwords (argon2), API tokens (hashed), AES-GCM encryption of sensitive blobs."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_hasher = PasswordHasher()

MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_problem(password: str) -> str | None:
    """A reason code when a new password is too weak, else None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return "password_too_short"
    if password.isdigit() or password.isalpha():
        return "password_too_simple"
    return None


# A dummy hash so that unknown usernames take as long as wrong passwords.
DUMMY_HASH = _hasher.hash("not-a-real-password-" + secrets.token_hex(8))


def new_api_token() -> tuple[str, str, str]:
    """Returns (token shown once, prefix stored in clear for look-up, sha256 hash stored)."""
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    token = f"lnl_{prefix}_{secret}"
    return token, prefix, token_hash(token)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_token_prefix(token: str) -> str | None:
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != "lnl" or len(parts[1]) != 8:
        return None
    return parts[1]


def token_matches(token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(token_hash(token), stored_hash)


class Cipher:
    """AES-256-GCM for sensitive data at rest (biometric templates and the like)."""

    def __init__(self, key_hex: str) -> None:
        self._aes = AESGCM(bytes.fromhex(key_hex))

    def encrypt(self, data: bytes, aad: bytes = b"") -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aes.encrypt(nonce, data, aad)

    def decrypt(self, blob: bytes, aad: bytes = b"") -> bytes:
        return self._aes.decrypt(blob[:12], blob[12:], aad)
