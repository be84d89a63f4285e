"""Sealing secret values: AES-256-GCM with a key derived from a caller-held password.

The platform's scheme (data-model.md, "Secret graph"), kept field for field:

- key: PBKDF2-HMAC-SHA256 over the password with a fresh random 16-byte salt for EVERY
  encryption; the iteration count is fixed by the key version (:func:`iterations`:
  100,000 for version 1, 200,000 for version 2, 600,000 from version 3 on);
- cipher: AES-256-GCM with a fresh random 12-byte IV; ``data`` is the ciphertext
  followed by the 16-byte tag (as ``AESGCM.encrypt`` returns it);
- wire format: ``{"keyVersion": int, "salt": b64, "iv": b64, "data": b64}`` (standard
  base64 with padding).

One addition, documented in ``docs/secrets.md``: the caller passes *associated data*
that GCM authenticates without encrypting. The secret graph binds every blob to its
place (tenant, graph id, node key: :func:`binding`), so a blob copied to another node,
graph or tenant does not decrypt, even with the right password. ``None`` gives the
platform's unbound blobs (for importing them).

Nothing here logs, and no error message or ``repr`` holds a clear value or a password:
passwords travel as :class:`Password`, whose ``repr`` is redacted, and a failed
decryption is detected in a helper frame and raised from a frame that holds neither the
password in clear nor the derived key (tracebacks rendered with their locals, as
structlog's ``dict_tracebacks`` does by default, show nothing secret).
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

import msgspec

from domain.errors import ValidationError, WrongSecretKeyError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# cryptography is imported where a key is derived or a blob opened: a process that
# touches no secret does not load it (issue 17, command line start).
# ruff: noqa: PLC0415

__all__ = [
    "IV_LENGTH",
    "KEY_LENGTH",
    "SALT_LENGTH",
    "Password",
    "SealedBlob",
    "binding",
    "iterations",
    "seal",
    "try_unseal",
    "unseal",
]

KEY_LENGTH: Final = 32  # AES-256
SALT_LENGTH: Final = 16
IV_LENGTH: Final = 12
_TAG_LENGTH: Final = 16
_ITERATIONS: Final = {1: 100_000, 2: 200_000}
_LATER_ITERATIONS: Final = 600_000  # OWASP's 2023 figure for PBKDF2-HMAC-SHA256
_BINDING_LABEL: Final = "metagraph-secret/1"


def iterations(key_version: int) -> int:
    """PBKDF2 iterations of a key version: 100,000 (v1), 200,000 (v2), 600,000 (v3+).

    A version's count never changes (blobs record only their version). A different
    key derivation would get a new blob field, not a new meaning for a version.
    """
    if isinstance(key_version, bool) or not isinstance(key_version, int) or key_version < 1:
        raise ValidationError(
            f"invalid key version {key_version!r}: use an integer >= 1 (1 and 2 are the "
            "platform's versions)"
        )
    return _ITERATIONS.get(key_version, _LATER_ITERATIONS)


class Password:
    """A caller-held password (or any key material), redacted in ``repr`` and ``str``.

    Wrap a password once and pass the wrapper around, so no frame, log line or error
    that shows its arguments shows the password.
    """

    __slots__ = ("_secret",)

    def __init__(self, value: str | bytes | Password) -> None:
        secret: bytes
        if isinstance(value, Password):
            secret = value._secret
        elif isinstance(value, str):
            try:
                secret = value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValidationError(
                    "a password must be well-formed text (this one holds a lone surrogate)"
                ) from None
        elif isinstance(value, bytes):
            secret = value
        else:
            raise ValidationError(
                f"a password must be str or bytes, got {type(value).__name__} (value not shown)"
            )
        if not secret:
            raise ValidationError("a password must not be empty")
        self._secret: bytes = secret

    def __repr__(self) -> str:
        return "Password(<redacted>)"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("a Password is not pickled: keep it in the process that holds it")

    def derive(self, salt: bytes, key_version: int) -> AESGCM:
        """The AES-256-GCM cipher keyed from this password, ``salt`` and the version."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

        kdf = PBKDF2HMAC(
            algorithm=hashes.SHA256(),
            length=KEY_LENGTH,
            salt=salt,
            iterations=iterations(key_version),
        )
        return AESGCM(kdf.derive(self._secret))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, field: str, length: int | None) -> bytes:
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ValidationError(f"secret blob: {field} is not base64") from None
    if length is not None and len(data) != length:
        raise ValidationError(f"secret blob: {field} must be {length} bytes, got {len(data)}")
    return data


class SealedBlob(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """An encrypted value as stored: ``{"keyVersion", "salt", "iv", "data"}``."""

    key_version: int
    salt: str
    iv: str
    data: str

    def to_json(self) -> dict[str, Any]:
        """The wire form (a JSON object with the data model's field names)."""
        wire: dict[str, Any] = msgspec.to_builtins(self)
        return wire

    @classmethod
    def from_json(cls, value: object) -> SealedBlob:
        """A blob from its wire form, checked; :class:`ValidationError` if malformed."""
        try:
            blob = msgspec.convert(value, cls)
        except msgspec.ValidationError as exc:
            raise ValidationError(
                f"malformed secret blob ({exc}); expected {{keyVersion, salt, iv, data}}"
            ) from None
        iterations(blob.key_version)
        _unb64(blob.salt, "salt", SALT_LENGTH)
        _unb64(blob.iv, "iv", IV_LENGTH)
        if len(_unb64(blob.data, "data", None)) < _TAG_LENGTH:
            raise ValidationError("secret blob: data is shorter than the GCM tag")
        return blob


def binding(tenant: str, graph_id: UUID, key: str) -> bytes:
    """The associated data binding a blob to one secret: tenant, graph id, node key.

    A JSON array (unambiguous whatever the key holds) under a label naming this scheme.
    """
    return msgspec.json.encode([_BINDING_LABEL, tenant, str(graph_id), key])


def seal(
    plaintext: bytes, password: Password, key_version: int, *, associated_data: bytes | None
) -> SealedBlob:
    """Encrypt ``plaintext`` with a fresh salt and IV under ``password``'s key version."""
    if not isinstance(plaintext, bytes):
        raise ValidationError(
            f"only bytes are sealed, got {type(plaintext).__name__} (value not shown)"
        )
    if not isinstance(password, Password):
        raise ValidationError("pass the password as a domain.crypto.Password")
    salt = os.urandom(SALT_LENGTH)
    iv = os.urandom(IV_LENGTH)
    data = password.derive(salt, key_version).encrypt(iv, plaintext, associated_data)
    return SealedBlob(key_version=key_version, salt=_b64(salt), iv=_b64(iv), data=_b64(data))


def try_unseal(
    blob: SealedBlob, password: Password, *, associated_data: bytes | None
) -> bytes | None:
    """The clear bytes, or ``None`` if the password (or the associated data) is wrong.

    GCM cannot tell a wrong password from an altered blob or another binding; all three
    fail authentication and give ``None``.
    """
    from cryptography.exceptions import InvalidTag

    checked = SealedBlob.from_json(msgspec.to_builtins(blob))
    cipher = password.derive(_unb64(checked.salt, "salt", SALT_LENGTH), checked.key_version)
    try:
        return cipher.decrypt(
            _unb64(checked.iv, "iv", IV_LENGTH),
            _unb64(checked.data, "data", None),
            associated_data,
        )
    except InvalidTag:
        return None


def unseal(blob: SealedBlob, password: Password, *, associated_data: bytes | None) -> bytes:
    """The clear bytes, or :class:`~domain.errors.WrongSecretKeyError`."""
    plaintext = try_unseal(blob, password, associated_data=associated_data)
    if plaintext is None:
        raise WrongSecretKeyError(
            f"cannot decrypt the blob: the password for key version {blob.key_version} is "
            "wrong (or the blob was altered, or belongs elsewhere); use the password of "
            "that key version",
            key_version=blob.key_version,
        )
    return plaintext
