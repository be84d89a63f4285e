"""A tenant's cipher and compressor, decided in one place (:mod:`streams.directory`):
``GRAPHSTORE_CIPHER_KEY`` / ``GRAPHSTORE_COMPRESSOR_TOPIC`` become every tenant file's
``CIPHER_KEY`` / ``COMPRESSOR_TOPIC`` (never ``system.db``'s), a bad key is refused by
the variable's name without its value, and a retirement record is read with them or
refused without them (:mod:`streams.retirement`)."""

from __future__ import annotations

import zlib
from pathlib import Path

import msgspec
import pytest
from eventsourcing.cipher import AESCipher
from eventsourcing.utils import Environment

from streams.directory import (
    CIPHER_KEY_VARIABLE,
    COMPRESSOR_VARIABLE,
    Directory,
    tenant_settings_of,
)
from streams.envelope import decode, encode
from streams.errors import ConfigurationError
from streams.reader import plain_state_of
from streams.retirement import RETIREMENT_TYPE, EncryptedRecordError, ranges_of, retirement_of

ZLIB = "eventsourcing.compressor:ZlibCompressor"


def test_the_variables_become_the_tenant_files_settings() -> None:
    key = AESCipher.create_key(16)
    assert tenant_settings_of({}) == {}
    assert tenant_settings_of({CIPHER_KEY_VARIABLE: "", COMPRESSOR_VARIABLE: " "}) == {}
    assert tenant_settings_of({CIPHER_KEY_VARIABLE: key, COMPRESSOR_VARIABLE: ZLIB}) == {
        "CIPHER_KEY": key,
        "COMPRESSOR_TOPIC": ZLIB,
    }


@pytest.mark.parametrize("bad", ["not a key at all", "c2hvcnQ=", "A" * 45])
def test_a_bad_key_is_refused_by_name_never_by_value(bad: str) -> None:
    with pytest.raises(ConfigurationError, match=CIPHER_KEY_VARIABLE) as refused:
        tenant_settings_of({CIPHER_KEY_VARIABLE: bad})
    assert bad not in str(refused.value)


def test_a_directory_gives_tenants_the_settings_and_system_db_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = AESCipher.create_key(32)
    monkeypatch.setenv(CIPHER_KEY_VARIABLE, key)
    monkeypatch.setenv(COMPRESSOR_VARIABLE, ZLIB)
    directory = Directory(tmp_path)
    env = directory.tenant_env("acme")
    assert env["CIPHER_KEY"] == key and env["COMPRESSOR_TOPIC"] == ZLIB
    assert "CIPHER_KEY" not in directory.system_env()
    assert key not in repr(directory)
    explicit = Directory(tmp_path, settings={"CIPHER_KEY": "given"}).tenant_env("acme")
    assert explicit["CIPHER_KEY"] == "given"  # settings passed in win
    monkeypatch.delenv(CIPHER_KEY_VARIABLE)
    monkeypatch.delenv(COMPRESSOR_VARIABLE)
    assert "CIPHER_KEY" not in Directory(tmp_path).tenant_env("acme")


def _record(state: bytes) -> str:
    return encode(
        tenant="acme",
        topic=RETIREMENT_TYPE,
        originator_id="635fde0f-6232-5b6c-8b75-5c7fa72aa3b9",
        originator_version=3,
        time_ms=0,
        state=state,
    )


def test_an_encrypted_record_is_read_with_the_key_and_refused_without_it() -> None:
    key = AESCipher.create_key(32)
    plain = b'{"runs":["secret"],"ranges":[[4,9]],"archive":null,"digest":"d","reason":"forget"}'
    cipher = AESCipher(Environment(env={"CIPHER_KEY": key}))
    sealed = decode(_record(cipher.encrypt(zlib.compress(plain))))
    undo = plain_state_of({"CIPHER_KEY": key, "COMPRESSOR_TOPIC": ZLIB})
    assert undo is not None
    assert ranges_of(sealed, undo) == ((4, 9),)
    record = retirement_of(sealed, undo)
    assert record is not None and record.runs == ["secret"] and record.reason == "forget"
    with pytest.raises(EncryptedRecordError, match="offset 12"):
        ranges_of(sealed, offset=12)
    other = plain_state_of({"CIPHER_KEY": AESCipher.create_key(32), "COMPRESSOR_TOPIC": ZLIB})
    with pytest.raises(msgspec.DecodeError, match="does not decrypt"):
        ranges_of(sealed, other)
    assert plain_state_of({}) is None
    assert ranges_of(decode(_record(plain))) == ((4, 9),)  # a plain record needs nothing
