"""The secret graph: secrets stored encrypted, so no event ever holds one in clear.

A built-in module: the system-scope graph type ``secret-graph`` (directed, no parallel
edges, no self-loops) with one node type, ``secret``, installed by :func:`install`. A
secret node's attributes are what the secret IS (``name``, ``description``, ``kind``)
and ``encrypted``, the sealed value: ``{keyVersion, salt, iv, data}`` (see
:mod:`domain.crypto`).

:class:`SecretBox` is the only way values go in and out. It encrypts BEFORE calling the
:class:`~domain.application.Metagraph`, so the clear value never reaches a command, the
attribute validation (whose errors may quote values), an event, a projection, a log or
an error. The passwords stay with the caller, in a :class:`SecretKeyring` (one password
per key version). Decisions and their reasons: ``docs/secrets.md``.

::

    keyring = SecretKeyring({1: password})
    box = SecretBox(app, keyring, tenant="acme")
    graph = box.create_graph("vault")
    box.store(graph, "db", "s3cret", name="database password", kind="password")
    box.reveal(graph, "db")  # 's3cret'
    SecretBox(app, keyring.with_key(2, new_password), tenant="acme").rotate(graph)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final
from uuid import UUID

import msgspec

from domain.application import Metagraph
from domain.crypto import Password, SealedBlob, binding, iterations, seal, try_unseal
from domain.errors import (
    DuplicateError,
    MissingSecretKeyError,
    NotFoundError,
    ValidationError,
    WrongSecretKeyError,
)
from domain.install import GraphTypeSpec, NodeTypeSpec, ensure_graph_type
from domain.logs import wrap_logger
from domain.values import GraphConfig

__all__ = [
    "GRAPH_TYPE",
    "SECRET",
    "SECRET_SCHEMA",
    "SPEC",
    "SecretBox",
    "SecretInfo",
    "SecretKeyring",
    "install",
]

log = wrap_logger(logging.getLogger("domain.secrets"))

GRAPH_TYPE: Final = "secret-graph"
SECRET: Final = "secret"

_B64: Final = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
BLOB_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "keyVersion": {"type": "integer", "minimum": 1},
        "salt": {"type": "string", "pattern": "^[A-Za-z0-9+/]{22}==$"},  # 16 bytes
        "iv": {"type": "string", "pattern": "^[A-Za-z0-9+/]{16}$"},  # 12 bytes
        "data": {"type": "string", "pattern": _B64, "minLength": 24},  # >= the 16-byte tag
    },
    "required": ["keyVersion", "salt", "iv", "data"],
    "additionalProperties": False,
}
SECRET_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 256},
        "description": {"type": "string", "maxLength": 4096},
        "kind": {"type": "string", "pattern": "^[a-z][a-z0-9-]{0,63}$"},
        "encrypted": BLOB_SCHEMA,
    },
    "required": ["name", "kind", "encrypted"],
    "additionalProperties": False,
}
SPEC: Final = GraphTypeSpec(
    name=GRAPH_TYPE,
    description="Secrets, stored encrypted (AES-256-GCM, caller-held passwords)",
    config=GraphConfig(graph_type="directed", multi=False, allow_self_loops=False),
    node_types=(
        NodeTypeSpec(
            name=SECRET,
            schema=SECRET_SCHEMA,
            description="what a secret is, and its value sealed (never in clear)",
        ),
    ),
)
"""The ``secret-graph`` graph type as :func:`install` defines it."""


def install(app: Metagraph) -> UUID:
    """Define (or bring up to date) the system-scope ``secret-graph`` type; its id."""
    return ensure_graph_type(app, SPEC)


class SecretInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What a secret is, without its value: its key, plain attributes and key version."""

    key: str
    name: str
    description: str
    kind: str
    key_version: int


class SecretKeyring:
    """The caller's passwords, one per key version, and the version new seals use.

    Held in memory only; ``repr`` shows the versions, never a password.
    """

    __slots__ = ("_passwords", "current")

    def __init__(
        self,
        passwords: Mapping[int, str | bytes | Password],
        *,
        current: int | None = None,
    ) -> None:
        if not isinstance(passwords, Mapping) or not passwords:
            raise ValidationError(
                "a keyring needs at least one password, as {key version: password}"
            )
        for version in passwords:
            iterations(version)
        self._passwords = {version: Password(p) for version, p in passwords.items()}
        chosen = max(self._passwords) if current is None else current
        if chosen not in self._passwords:
            raise ValidationError(
                f"current key version {chosen!r} has no password in this keyring (it holds "
                f"versions {sorted(self._passwords)}); add its password or choose one of those"
            )
        self.current: int = chosen

    @property
    def versions(self) -> tuple[int, ...]:
        """The key versions this keyring holds a password for."""
        return tuple(sorted(self._passwords))

    def password(self, key_version: int) -> Password | None:
        """The password of ``key_version``, if held."""
        return self._passwords.get(key_version)

    def with_key(self, key_version: int, password: str | bytes | Password) -> SecretKeyring:
        """A new keyring with this password added for ``key_version``, made current."""
        if key_version in self._passwords:
            raise ValidationError(
                f"key version {key_version} already has a password in this keyring; a "
                "version's password never changes (blobs name only the version): use a new "
                "version"
            )
        return SecretKeyring({**self._passwords, key_version: password}, current=key_version)

    def without(self, key_version: int) -> SecretKeyring:
        """A new keyring without ``key_version`` (after rotating away from it)."""
        rest = {v: p for v, p in self._passwords.items() if v != key_version}
        current = self.current if self.current != key_version else None
        return SecretKeyring(rest, current=current)

    def __repr__(self) -> str:
        return f"SecretKeyring(versions={list(self.versions)}, current={self.current})"


class SecretBox:
    """Store, reveal and rotate the secrets of secret graphs in one tenant file.

    ``tenant`` (the org id, for instance) is bound into every blob with the graph id and
    the node key (AES-GCM associated data): a blob copied to another node, graph or
    tenant does not decrypt. Use the same ``tenant`` for every box over one file.
    """

    def __init__(self, app: Metagraph, keyring: SecretKeyring, *, tenant: str = "") -> None:
        if not isinstance(keyring, SecretKeyring):
            raise ValidationError("pass a SecretKeyring (it holds the passwords by version)")
        if not isinstance(tenant, str):
            raise ValidationError(f"invalid tenant {tenant!r}: use a string (the org id)")
        self._app = app
        self._keyring = keyring
        self._tenant = tenant
        self._checked: set[UUID] = set()

    def __repr__(self) -> str:
        return f"SecretBox(tenant={self._tenant!r}, keyring={self._keyring!r})"

    @property
    def keyring(self) -> SecretKeyring:
        return self._keyring

    # --- graphs ----------------------------------------------------------------------

    def create_graph(
        self,
        name: str,
        *,
        description: str = "",
        owner_id: str = "",
        project_id: str = "",
    ) -> UUID:
        """Install the graph type if needed and create an active secret graph; its id."""
        install(self._app)
        return self._app.create_graph(
            GRAPH_TYPE,
            name,
            description=description,
            owner_id=owner_id,
            project_id=project_id,
            status="active",
        )

    def _graph(self, graph_id: UUID | str) -> UUID:
        info = self._app.get_graph(graph_id)
        if info.id not in self._checked:
            graph_type = self._app.get_graph_type(info.graph_type_id)
            if graph_type.name != GRAPH_TYPE or graph_type.scope != "system":
                raise ValidationError(
                    f"graph {info.name!r} ({info.id}) is a {info.graph_type_name!r} graph, "
                    f"not a {GRAPH_TYPE!r} graph; secrets live only in secret graphs "
                    "(SecretBox.create_graph makes one)"
                )
            self._checked.add(info.id)
        return info.id

    # --- writes ----------------------------------------------------------------------

    def store(
        self,
        graph_id: UUID | str,
        key: str,
        value: str | bytes,
        *,
        name: str | None = None,
        description: str | None = None,
        kind: str | None = None,
    ) -> None:
        """Encrypt ``value`` with the keyring's current version and store it as ``key``.

        A new secret is added (``name`` defaults to the key, ``kind`` to ``generic``,
        ``description`` to ``""``); an existing one gets the new value and the
        metadata given (the rest stays). One event either way.
        """
        graph = self._graph(graph_id)
        sealed = self._seal(graph, key, value).to_json()
        del value  # no clear value in this frame while commands run (tracebacks show locals)
        given = {"name": name, "description": description, "kind": kind}
        metadata = {field: v for field, v in given.items() if v is not None}
        try:
            self._app.add_node(
                graph,
                key,
                SECRET,
                {
                    "name": key,
                    "description": "",
                    "kind": "generic",
                    **metadata,
                    "encrypted": sealed,
                },
            )
        except DuplicateError:
            self._app.update_node(graph, key, {**metadata, "encrypted": sealed})
        log.info("secret stored", graph_id=str(graph), key=key, key_version=self._keyring.current)

    def describe(
        self,
        graph_id: UUID | str,
        key: str,
        *,
        name: str | None = None,
        description: str | None = None,
        kind: str | None = None,
    ) -> None:
        """Change what a secret is said to be (not its value; no decryption)."""
        graph = self._graph(graph_id)
        self._blob(graph, key)
        given = {"name": name, "description": description, "kind": kind}
        changes = {field: v for field, v in given.items() if v is not None}
        if changes:
            self._app.update_node(graph, key, changes)

    def delete(self, graph_id: UUID | str, key: str) -> None:
        """Delete a secret. Its earlier events (with their blobs) stay in the stream."""
        graph = self._graph(graph_id)
        self._blob(graph, key)
        self._app.delete_node(graph, key)

    def rotate(self, graph_id: UUID | str, *, to_version: int | None = None) -> list[str]:
        """Re-encrypt every secret of the graph not yet at ``to_version`` (default: the
        keyring's current version); the keys re-encrypted, one update event each.

        Every secret is decrypted and re-sealed before the first write, so a secret
        the keyring cannot open stops the rotation with nothing written. Every update
        commits in ONE transaction (a unit of work): a rotation is whole or absent.
        """
        graph = self._graph(graph_id)
        target = self._keyring.current if to_version is None else to_version
        iterations(target)
        password = self._keyring.password(target)
        if password is None:
            raise MissingSecretKeyError(
                f"cannot rotate to key version {target}: the keyring holds no password for "
                f"it (it holds {list(self._keyring.versions)}); use keyring.with_key",
                key_version=target,
                graph_id=str(graph),
            )
        planned: list[tuple[str, Any, SealedBlob]] = []
        for key, node_type in self._app.nodes(graph).items():
            if node_type != SECRET:
                continue
            recorded = self._app.get_node(graph, key).attributes.get("encrypted")
            blob = _parse_blob(recorded, graph, key)
            if blob.key_version != target:
                planned.append((key, recorded, self._reseal(graph, key, blob, password, target)))
        with self._app.transaction():
            rotated = self._write_rotation(graph, planned, password, target)
        log.info("secrets rotated", graph_id=str(graph), key_version=target, count=len(rotated))
        return rotated

    def _write_rotation(
        self,
        graph: UUID,
        planned: list[tuple[str, Any, SealedBlob]],
        password: Password,
        target: int,
    ) -> list[str]:
        rotated: list[str] = []
        for key, recorded, planned_blob in planned:
            resealed = planned_blob
            try:
                now = self._app.get_node(graph, key).attributes.get("encrypted")
            except NotFoundError:
                continue  # deleted meanwhile
            if now != recorded:  # a new value was stored meanwhile: re-seal that one
                blob = _parse_blob(now, graph, key)
                if blob.key_version == target:
                    continue
                resealed = self._reseal(graph, key, blob, password, target)
            self._app.update_node(graph, key, {"encrypted": resealed.to_json()})
            rotated.append(key)
        return rotated

    # --- reads -----------------------------------------------------------------------

    def info(self, graph_id: UUID | str, key: str) -> SecretInfo:
        """What secret ``key`` is, and its key version (no decryption)."""
        graph = self._graph(graph_id)
        return _info(key, self._app.get_node(graph, key).attributes, graph)

    def secrets(self, graph_id: UUID | str) -> list[SecretInfo]:
        """Every secret of a graph, described (no decryption), sorted by key."""
        graph = self._graph(graph_id)
        found = []
        for key in sorted(self._app.nodes(graph)):
            try:
                found.append(_info(key, self._app.get_node(graph, key).attributes, graph))
            except NotFoundError:
                continue
        return found

    def reveal_bytes(self, graph_id: UUID | str, key: str) -> bytes:
        """The clear value of secret ``key``, as bytes.

        :class:`~domain.errors.MissingSecretKeyError` if the keyring has no password for
        its key version, :class:`~domain.errors.WrongSecretKeyError` if that password is
        wrong (or the blob was altered or copied from elsewhere).
        """
        graph = self._graph(graph_id)
        return self._open(graph, key, self._blob(graph, key))

    def reveal(self, graph_id: UUID | str, key: str) -> str:
        """The clear value of secret ``key`` as text (stored as ``str``, or UTF-8)."""
        text = _text(self.reveal_bytes(graph_id, key))
        if text is None:
            raise ValidationError(
                f"secret {key!r} is not UTF-8 text (it was stored as bytes); use reveal_bytes"
            )
        return text

    # --- internals -------------------------------------------------------------------

    def _binding(self, graph: UUID, key: str) -> bytes:
        return binding(self._tenant, graph, key)

    def _seal(self, graph: UUID, key: str, value: str | bytes) -> SealedBlob:
        version = self._keyring.current
        password = self._keyring.password(version)
        assert password is not None  # the keyring guarantees its current version
        if isinstance(value, str):
            data = _encoded(value)
        else:
            data = value if isinstance(value, bytes) else None
        given = type(value).__name__
        del value
        if data is None:
            raise ValidationError(
                f"secret {key!r}: a value must be well-formed text (str) or bytes, got "
                f"{given} (value not shown)"
            )
        return seal(data, password, version, associated_data=self._binding(graph, key))

    def _blob(self, graph: UUID, key: str) -> SealedBlob:
        node = self._app.get_node(graph, key)
        if node.node_type != SECRET:
            raise ValidationError(f"node {key!r} is a {node.node_type!r}, not a secret")
        return _parse_blob(node.attributes.get("encrypted"), graph, key)

    def _open(self, graph: UUID, key: str, blob: SealedBlob) -> bytes:
        password = self._keyring.password(blob.key_version)
        if password is None:
            log.warning(
                "secret not opened: no password for its key version",
                graph_id=str(graph),
                key=key,
                key_version=blob.key_version,
            )
            raise MissingSecretKeyError(
                f"secret {key!r} of graph {graph} is sealed with key version "
                f"{blob.key_version}, and the keyring holds no password for it (it holds "
                f"{list(self._keyring.versions)}); add that version's password",
                key_version=blob.key_version,
                graph_id=str(graph),
                key=key,
            )
        opened = try_unseal(blob, password, associated_data=self._binding(graph, key))
        if opened is None:
            log.warning(
                "secret not opened: wrong key",
                graph_id=str(graph),
                key=key,
                key_version=blob.key_version,
            )
            raise WrongSecretKeyError(
                f"cannot decrypt secret {key!r} of graph {graph}: the password for key "
                f"version {blob.key_version} is wrong (or the blob was altered, or copied "
                "from another secret, graph or tenant); use the right password for that "
                "version",
                key_version=blob.key_version,
                graph_id=str(graph),
                key=key,
            )
        return opened

    def _reseal(
        self, graph: UUID, key: str, blob: SealedBlob, password: Password, version: int
    ) -> SealedBlob:
        return seal(
            self._open(graph, key, blob),
            password,
            version,
            associated_data=self._binding(graph, key),
        )


def _encoded(value: str) -> bytes | None:
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        return None


def _text(value: bytes) -> str | None:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _parse_blob(value: object, graph: UUID, key: str) -> SealedBlob:
    try:
        return SealedBlob.from_json(value)
    except ValidationError as exc:
        raise ValidationError(f"secret {key!r} of graph {graph}: {exc}") from None


def _info(key: str, attributes: dict[str, Any], graph: UUID) -> SecretInfo:
    blob = _parse_blob(attributes.get("encrypted"), graph, key)
    return SecretInfo(
        key=key,
        name=str(attributes.get("name", "")),
        description=str(attributes.get("description", "")),
        kind=str(attributes.get("kind", "")),
        key_version=blob.key_version,
    )
