"""API keys: their format, how they are made and hashed, and expiry values.

A key is ``gsk_`` + 43 URL-safe characters: 256 random bits from :mod:`secrets`. Only
its hex SHA-256 hash is stored. A key holds 256 random bits, so a fast hash is enough:
nobody can search that space, with or without a salt or a pepper.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime
from typing import Final, TypeGuard

from domain.errors import ValidationError

__all__ = ["KEY_PREFIX", "check_expiry", "hash_key", "is_well_formed", "new_secret"]

KEY_PREFIX: Final = "gsk_"
"""Every API key starts with this, so a leaked key is recognisable (secret scanners)."""
_KEY_BYTES: Final = 32
_KEY_FORMAT: Final = re.compile(rf"{KEY_PREFIX}[A-Za-z0-9_-]{{43}}")


def new_secret() -> str:
    """A new API key in clear: hand it over once, store only :func:`hash_key` of it."""
    return KEY_PREFIX + secrets.token_urlsafe(_KEY_BYTES)


def hash_key(secret: str) -> str:
    """The stored form of an API key: its SHA-256, in hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def is_well_formed(api_key: object) -> TypeGuard[str]:
    """Whether ``api_key`` has the shape of a key this store issues."""
    return isinstance(api_key, str) and _KEY_FORMAT.fullmatch(api_key) is not None


def check_expiry(expires_at: object, now: datetime) -> datetime | None:
    """``expires_at`` in UTC if it is a timezone-aware time after ``now`` (or None)."""
    if expires_at is None:
        return None
    if not isinstance(expires_at, datetime) or expires_at.tzinfo is None:
        raise ValidationError(
            f"invalid expiry {expires_at!r}: use a timezone-aware datetime (e.g. "
            "datetime.now(UTC) + timedelta(days=90)), or None for no expiry"
        )
    if expires_at <= now:
        raise ValidationError(
            f"invalid expiry {expires_at.isoformat()}: it is not in the future (now is "
            f"{now.isoformat()})"
        )
    return expires_at.astimezone(UTC)
