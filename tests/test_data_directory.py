"""The data directory: system.db, tenant-<org id>.db, org id rules, the tenant registry."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import Metagraph, check_org_id
from domain.errors import InvalidOrgIdError, ValidationError
from domain.identity import Principal
from graphstore.data import DataDirectory

SYSTEM = Principal.system()


@pytest.fixture
def data(tmp_path: Path) -> Iterator[DataDirectory]:
    with DataDirectory(tmp_path / "data") as directory:
        yield directory


def files_under(root: Path) -> set[Path]:
    return {path for path in root.rglob("*")}


def found_org(data: DataDirectory, slug: str, name: str | None = None) -> None:
    owner = data.identity.create_account(f"owner@{slug}.example", "Owner", actor=SYSTEM)
    data.identity.create_organization(name or slug.title(), slug, owner_id=owner.id, actor=SYSTEM)


# --- the directory ---------------------------------------------------------------------


def test_data_directory_is_created_if_missing(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    DataDirectory(target)
    assert target.is_dir()


def test_missing_data_directory_is_refused_when_creation_is_off(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        DataDirectory(tmp_path / "missing", create=False)
    assert not (tmp_path / "missing").exists()


def test_data_directory_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="not a directory"):
        DataDirectory(tmp_path / "file")


def test_system_and_tenant_files_are_directly_inside_the_directory(
    data: DataDirectory,
) -> None:
    assert data.system_path == data.path / "system.db"
    assert data.tenant_path("acme") == data.path / "tenant-acme.db"


def test_environments_select_the_persistence_module_and_the_file_by_name(
    tmp_path: Path,
) -> None:
    data = DataDirectory(tmp_path, settings={"HONKER_SYNCHRONOUS": "FULL", "HONKER_DBNAME": "x"})
    assert data.system_env() == {
        "HONKER_SYNCHRONOUS": "FULL",
        "HONKER_SNAPSHOTS": "latest",
        "PERSISTENCE_MODULE": "streams.persistence",
        "HONKER_DBNAME": str(tmp_path.resolve() / "system.db"),
    }
    assert data.tenant_env("acme")["HONKER_DBNAME"] == str(tmp_path.resolve() / "tenant-acme.db")


# --- org ids ---------------------------------------------------------------------------

INVALID_ORG_IDS = [
    ("", "length"),
    ("a" * 64, "length"),
    ("..", "'..'"),
    ("../etc", "path separator"),
    ("a..b", "'..'"),
    ("acme/evil", "path separator"),
    ("acme\\evil", "path separator"),
    ("/abs", "path separator"),
    ("Acme", "lowercase"),
    ("ac me", "lowercase"),
    ("acme_1", "lowercase"),
    ("acme.db", "lowercase"),
    ("acme\x00", "lowercase"),
    ("caf\u00e9", "lowercase"),
    ("-acme", "start or end"),
    ("acme-", "start or end"),
    (7, "string"),
    (None, "string"),
]


@pytest.mark.parametrize(("value", "rule"), INVALID_ORG_IDS)
def test_invalid_org_id_is_rejected_naming_the_value_and_the_rule(
    data: DataDirectory, value: object, rule: str
) -> None:
    with pytest.raises(InvalidOrgIdError) as info:
        data.tenant_path(value)  # type: ignore[arg-type]
    assert isinstance(info.value, ValidationError)
    assert repr(value)[:40] in str(info.value)
    assert rule in info.value.rule
    assert info.value.value == value


@pytest.mark.parametrize("value", ["a", "7", "acme", "acme-labs-2", "a" * 63, "0-0"])
def test_valid_org_ids_are_accepted(value: str) -> None:
    assert check_org_id(value) == value


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=70))
def test_an_accepted_org_id_always_names_a_file_directly_in_the_directory(value: str) -> None:
    data = DataDirectory.__new__(DataDirectory)
    data.path = Path("/srv/data")
    try:
        path = data.tenant_path(value)
    except InvalidOrgIdError:
        return
    assert path.parent == data.path
    assert path.name == f"tenant-{value}.db"
    assert os.path.normpath(path) == str(path)


def test_org_id_with_dotdot_is_rejected_before_any_file_is_touched(tmp_path: Path) -> None:
    data = DataDirectory(tmp_path / "data")
    owner = data.identity.create_account("ada@example.com", "Ada", actor=SYSTEM)
    before = files_under(tmp_path)
    position = data.identity.recorder.max_notification_id()
    for bad in ("../escape", "..", "x/../../y"):
        with pytest.raises(InvalidOrgIdError):
            data.identity.create_organization("Evil", bad, owner_id=owner.id, actor=SYSTEM)
        with pytest.raises(InvalidOrgIdError):
            data.create_tenant_file(bad)
        with pytest.raises(InvalidOrgIdError):
            data.tenant_env(bad)
    assert files_under(tmp_path) - before == set()
    assert not any(p.name.startswith("tenant-") for p in tmp_path.rglob("*"))
    assert data.identity.recorder.max_notification_id() == position
    data.close()


# --- tenant files and the registry ------------------------------------------------------


def test_creating_an_organization_creates_and_registers_its_tenant_file(
    data: DataDirectory,
) -> None:
    assert not data.tenant_path("acme").exists()
    found_org(data, "acme")
    assert data.tenant_path("acme").is_file()
    assert data.tenants() == ["acme"]
    with Metagraph(env=data.tenant_env("acme")) as metagraph:
        assert metagraph.recorder.max_notification_id() is None
        assert metagraph.graph_types() == {}


def test_tenants_are_listed_from_the_registry_not_by_globbing(data: DataDirectory) -> None:
    found_org(data, "beta")
    found_org(data, "acme")
    (data.path / "tenant-rogue.db").write_bytes(b"")
    data.create_tenant_file("unregistered")
    assert data.tenants() == ["acme", "beta"]


def test_tenant_registry_survives_reopening(tmp_path: Path) -> None:
    with DataDirectory(tmp_path) as first:
        found_org(first, "acme")
    with DataDirectory(tmp_path) as second:
        assert second.tenants() == ["acme"]


def test_a_fresh_directory_has_no_tenants(data: DataDirectory) -> None:
    assert data.tenants() == []


def test_creating_a_tenant_file_is_idempotent(data: DataDirectory) -> None:
    path = data.create_tenant_file("acme")
    with Metagraph(env=data.tenant_env("acme")) as metagraph:
        metagraph.define_graph_type("t")
    assert data.create_tenant_file("acme") == path
    with Metagraph(env=data.tenant_env("acme")) as metagraph:
        assert list(metagraph.graph_types()) == ["t"]


def test_tenant_files_keep_only_each_aggregates_latest_snapshot(tmp_path: Path) -> None:
    with DataDirectory(tmp_path / "d") as data:
        assert data.tenant_env("acme")["HONKER_SNAPSHOTS"] == "latest"
    with DataDirectory(tmp_path / "e", settings={"HONKER_SNAPSHOTS": "all"}) as data:
        assert data.tenant_env("acme")["HONKER_SNAPSHOTS"] == "all"
