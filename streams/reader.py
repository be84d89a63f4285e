"""Opening a tenant file for reading: the one way every reader does it.

A projector, a replay, the flowgraph views, a change subscription, a rebuild, the
runner, the relay, ``verify`` and the executor's read model all read a tenant file the
same way: the settings the writers use (file, durability, stream name, cipher), the
file's reader pool and commit watcher, and the file closed when they are done. A
:class:`TenantReader` is that, once: open it, read through :attr:`TenantReader.datastore`
(with :mod:`streams.reading` and :mod:`streams.positions`), close it (or use ``with``).

An object that reads through a reader it did not open borrows it; one built by a
``open(env)`` classmethod owns it and closes it with itself: :meth:`TenantReader.adopt`
builds such an object, and closes the file if building it fails.

The file itself is shared: every reader and application of one file in a process uses
one handle (one reader pool, one commit watcher, see :mod:`streams.persistence`), so a
reader costs a few objects, not a connection, when the file is open already.

Writers (an eventsourcing application, the benchmarks that write recorded events
straight through a recorder) build their own ``HonkerFactory`` through eventsourcing:
they need its recorders, which a reader must not create.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from eventsourcing.persistence import Cipher, Compressor
from eventsourcing.utils import Environment, resolve_topic

from streams._honker import Watcher
from streams.persistence import HonkerDatastore, HonkerFactory

__all__ = ["TenantReader", "cipher_of", "plain_state_of"]

_T = TypeVar("_T")


class TenantReader:
    """One tenant file opened for reading; :meth:`close` closes it.

    ``env`` selects the file and its settings as the writers' environment does
    (``HONKER_DBNAME``, ``HONKER_SYNCHRONOUS``, ``CIPHER_KEY``, ...). ``name`` is the
    upstream application's name: the prefix of its settings (``METAGRAPH_CIPHER_KEY``)
    and the stream's name unless ``HONKER_STREAM`` says otherwise; an
    :class:`~eventsourcing.utils.Environment` brings its own name.
    """

    def __init__(self, env: Mapping[str, str] | Environment, name: str = "metagraph") -> None:
        environment = env if isinstance(env, Environment) else Environment(name, env)
        factory = HonkerFactory(environment)
        try:
            self.plain_state = _plain_state(factory)
            """Undoes the cipher and compressor the writers configured (the same
            ``CIPHER_KEY`` and ``COMPRESSOR_TOPIC``), or None when states are plain JSON."""
        except BaseException:
            factory.close()
            raise
        self._factory = factory
        self.datastore: HonkerDatastore = factory.datastore
        """The file's reader pool (and its write transactions, for a reader's own rows)."""
        self.stream: str = factory.stream
        """The upstream stream's name in the file."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.datastore.path)!r}, stream={self.stream!r})"

    @property
    def watcher(self) -> Watcher:
        """The file's commit watcher (wakes on any process's commit)."""
        return self.datastore.watcher

    def adopt(self, build: Callable[[TenantReader], _T]) -> _T:
        """``build(self)``: an object that reads through this file and closes it with
        itself. If ``build`` raises, the file is closed here and the error goes on."""
        try:
            return build(self)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the file (stops its watcher once its last user in this process is
        gone); closing twice is harmless."""
        self._factory.close()

    def __enter__(self) -> TenantReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def plain_state_of(
    env: Mapping[str, str] | Environment, name: str = "metagraph"
) -> Callable[[bytes], bytes] | None:
    """What :attr:`TenantReader.plain_state` would be for ``env``, without opening a file:
    for a reader of entries that are not in a file yet (a restore from JetStream).

    The same settings as eventsourcing's factory reads (``CIPHER_KEY``, ``CIPHER_TOPIC``,
    ``COMPRESSOR_TOPIC``, each possibly prefixed with the application's name)."""
    environment = env if isinstance(env, Environment) else Environment(name, env)
    cipher = cipher_of(environment)
    compressor: Compressor | None = None
    compressor_topic = environment.get("COMPRESSOR_TOPIC")
    if compressor_topic:
        found = resolve_topic(compressor_topic)
        compressor = found() if isinstance(found, type) else found
    return _undo(cipher, compressor)


def cipher_of(env: Mapping[str, str] | Environment, name: str = "metagraph") -> Cipher | None:
    """The cipher a tenant's writers build from ``env`` (``CIPHER_KEY``, ``CIPHER_TOPIC``,
    as eventsourcing's factory reads them), or None when its events are not encrypted:
    the one place it is built for what is not a stream event (the archive's run bodies).
    A bad key raises the cipher's own error, which never shows the key."""
    environment = env if isinstance(env, Environment) else Environment(name, env)
    cipher_topic = environment.get("CIPHER_TOPIC")
    if environment.get("CIPHER_KEY") and not cipher_topic:
        cipher_topic = "eventsourcing.cipher:AESCipher"
    if not cipher_topic:
        return None
    cipher: Cipher = resolve_topic(cipher_topic)(environment)
    return cipher


def _plain_state(factory: HonkerFactory) -> Callable[[bytes], bytes] | None:
    """Undo the cipher and compressor configured in the factory's environment, if any.

    Such states are carried as ``data_b64`` in the envelope; a reader needs the same
    ``CIPHER_KEY`` (and ``COMPRESSOR_TOPIC``) as the application that wrote them.
    """
    return _undo(factory.cipher(), factory.compressor())


def _undo(cipher: Cipher | None, compressor: Compressor | None) -> Callable[[bytes], bytes] | None:
    if cipher is None and compressor is None:
        return None

    def plain(state: bytes) -> bytes:
        if cipher is not None:
            state = cipher.decrypt(state)
        if compressor is not None:
            state = compressor.decompress(state)
        return state

    return plain
