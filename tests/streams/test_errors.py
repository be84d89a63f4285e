"""Honker's bare ``RuntimeError`` mapped to eventsourcing's PEP 249 classes.

Every mapping in ``streams._honker._ERROR_CLASSES`` is triggered for real on a real file
where SQLite can be made to produce it; the few it cannot be made to produce here are
checked through :func:`streams._honker.classify` with SQLite's exact message text (the
strings are those in the bundled SQLite 3.45.1 library), and say so.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import (
    DatabaseError,
    DataError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    PersistenceError,
    ProgrammingError,
    StoredEvent,
)

from streams import _honker
from streams.persistence import HonkerApplicationRecorder, HonkerDatastore
from tests.streams._writer import Account, Worker, index_matches_stream, ledger

# ------------------------------------------------------------------------- fixtures


@pytest.fixture
def recorder(datastore: HonkerDatastore) -> HonkerApplicationRecorder:
    recorder = HonkerApplicationRecorder(datastore, stream="errors")
    recorder.create_table()
    return recorder


@pytest.fixture
def table(datastore: HonkerDatastore) -> HonkerDatastore:
    """A datastore with a table ``t`` that has one row and every kind of constraint."""
    with datastore.transaction() as tx:
        tx.execute(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
            "amount INTEGER CHECK (amount > 0), locked INTEGER NOT NULL DEFAULT 0)"
        )
        tx.execute("CREATE TABLE s (x INTEGER) STRICT")
        tx.execute("INSERT INTO t (id, name, amount) VALUES (1, 'one', 1)")
    return datastore


def _event(originator_id: UUID, version: int) -> StoredEvent:
    return StoredEvent(originator_id, version, "tests:Thing.Happened", b'{"n":1}')


def _rows(recorder: HonkerApplicationRecorder) -> tuple[int, int]:
    """(stream rows of the recorder's topic, index rows), read through the reader pool."""
    stream = recorder.datastore.query(
        "SELECT count(*) AS n FROM _honker_stream WHERE topic = ?", [recorder.stream]
    )
    index = recorder.datastore.query(f'SELECT count(*) AS n FROM "{recorder.index_table_name}"')
    return stream[0]["n"], index[0]["n"]


def _write(datastore: HonkerDatastore, *statements: str) -> Callable[[], None]:
    def run() -> None:
        with datastore.transaction() as tx:
            for statement in statements:
                tx.execute(statement)

    return run


def _raises(
    error_class: type[PersistenceError], run: Callable[[], object], fragment: str, path: Path
) -> PersistenceError:
    """``run`` raises exactly ``error_class`` naming the file and SQLite's message."""
    with pytest.raises(PersistenceError) as info:
        run()
    assert type(info.value) is error_class, f"{type(info.value).__name__}: {info.value}"
    assert fragment.lower() in str(info.value).lower()
    assert str(path) in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)  # Honker's error is kept
    return info.value


def _still_writes(datastore: HonkerDatastore) -> None:
    """After an error the writer is usable: no transaction left open, nothing stuck."""
    with datastore.transaction() as tx:
        assert tx.query("SELECT 1 AS one") == [{"one": 1}]


# --------------------------------------------------------------- IntegrityError


def test_version_conflict_raises_integrity_error_and_writes_nothing(
    recorder: HonkerApplicationRecorder,
) -> None:
    first, second = uuid4(), uuid4()
    assert recorder.insert_events([_event(first, 1)]) == [1]
    # A new aggregate's event and a conflicting one in one batch: neither is written.
    with pytest.raises(IntegrityError, match="version conflict") as info:
        recorder.insert_events([_event(second, 1), _event(first, 1)])
    assert "Nothing was written" in str(info.value)
    assert _rows(recorder) == (1, 1)
    assert recorder.select_events(second) == []
    assert [e.originator_version for e in recorder.select_events(first)] == [1]
    # The ids were not used up: the next commit gets the next id.
    assert recorder.insert_events([_event(second, 1)]) == [2]


def test_conflict_inside_one_batch_raises_integrity_error(
    recorder: HonkerApplicationRecorder,
) -> None:
    originator_id = uuid4()
    with pytest.raises(IntegrityError):
        recorder.insert_events([_event(originator_id, 1), _event(originator_id, 1)])
    assert _rows(recorder) == (0, 0)
    assert recorder.max_notification_id() is None


def test_conflict_in_the_last_chunk_rolls_back_every_chunk(
    recorder: HonkerApplicationRecorder,
) -> None:
    # The recorder writes 250 rows per statement: 600 events take three statements for the
    # stream and three for the index. The conflict is in the last one.
    taken = uuid4()
    recorder.insert_events([_event(taken, 1)])
    big = uuid4()
    batch = [_event(big, v) for v in range(1, 601)] + [_event(taken, 1)]
    with pytest.raises(IntegrityError):
        recorder.insert_events(batch)
    assert _rows(recorder) == (1, 1)
    assert recorder.select_events(big) == []
    assert recorder.insert_events(batch[:-1])[-1] == 601


def test_stale_aggregate_through_an_application_raises_integrity_error(
    tenant_file: Path,
) -> None:
    app = ledger(tenant_file)
    try:
        account = Account(owner="a")
        app.save(account)
        mine, theirs = app.repository.get(account.id), app.repository.get(account.id)
        mine.credit(1)
        app.save(mine)
        theirs.credit(2)
        theirs.credit(3)
        with pytest.raises(IntegrityError):
            app.save(theirs)
        assert app.repository.get(account.id).balance == 1
        assert (
            index_matches_stream(app.factory.datastore, "Ledger", app.recorder.index_table_name)
            == 2
        )
    finally:
        app.close()


@pytest.mark.parametrize(
    ("statement", "fragment"),
    [
        ("INSERT INTO t (id, name, amount) VALUES (2, 'one', 1)", "UNIQUE constraint failed"),
        ("INSERT INTO t (id, name, amount) VALUES (1, 'two', 1)", "UNIQUE constraint failed"),
        ("INSERT INTO t (id, name, amount) VALUES (2, NULL, 1)", "NOT NULL constraint failed"),
        ("INSERT INTO t (id, name, amount) VALUES (2, 'two', 0)", "CHECK constraint failed"),
    ],
)
def test_constraints_raise_integrity_error_and_roll_back(
    table: HonkerDatastore, tenant_file: Path, statement: str, fragment: str
) -> None:
    good = "INSERT INTO t (id, name, amount) VALUES (3, 'three', 3)"
    _raises(IntegrityError, _write(table, good, statement), fragment, tenant_file)
    assert table.query("SELECT id FROM t") == [{"id": 1}]  # the good row went too
    _still_writes(table)


# ------------------------------------------------------------- ProgrammingError


@pytest.mark.parametrize(
    ("statement", "fragment"),
    [
        ("SELECT * FROM missing", "no such table"),
        ("SELEC 1", "syntax error"),
        ("SELECT missing FROM t", "no such column"),
        ("SELECT missing()", "no such function"),
        ("SELECT abs(1, 2)", "wrong number of arguments"),
        ("CREATE TABLE t (x)", "already exists"),
        ("SELECT 1 +", "incomplete input"),
        # Honker's own message: a statement that returns rows passed to execute().
        ("SELECT 1", "did you mean to call query"),
    ],
)
def test_bad_sql_raises_programming_error(
    table: HonkerDatastore, tenant_file: Path, statement: str, fragment: str
) -> None:
    _raises(ProgrammingError, _write(table, statement), fragment, tenant_file)
    _still_writes(table)


def test_bad_sql_through_the_reader_pool_raises_programming_error(
    table: HonkerDatastore, tenant_file: Path
) -> None:
    _raises(
        ProgrammingError, lambda: table.query("SELECT * FROM missing"), "no such table", tenant_file
    )
    _raises(ProgrammingError, lambda: table.query("SELEC 1"), "syntax error", tenant_file)


def test_a_name_that_looks_like_an_error_does_not_change_the_class(
    table: HonkerDatastore, tenant_file: Path
) -> None:
    # SQLite quotes the offending name into its message: the class must still follow the
    # message, not words in a column or table name.
    _raises(
        ProgrammingError, _write(table, "SELECT interrupted FROM t"), "no such column", tenant_file
    )
    _raises(ProgrammingError, _write(table, "SELECT * FROM locked"), "no such table", tenant_file)


def test_nested_transaction_raises_programming_error(
    datastore: HonkerDatastore, tenant_file: Path
) -> None:
    def nested() -> None:
        with datastore.transaction(), datastore.transaction():
            pass

    _raises(ProgrammingError, nested, "nested db.transaction()", tenant_file)
    _still_writes(datastore)


def test_changing_durability_inside_a_transaction_raises_programming_error(
    datastore: HonkerDatastore, tenant_file: Path
) -> None:
    run = _write(datastore, "PRAGMA synchronous = FULL")
    _raises(ProgrammingError, run, "may not be changed inside a transaction", tenant_file)
    assert datastore.file.writer_setting("synchronous") == 1  # unchanged (NORMAL)


# ------------------------------------------------------------------- DataError


@pytest.mark.parametrize(
    ("statement", "fragment"),
    [
        ("INSERT INTO t (id, name, amount) VALUES ('two', 'two', 2)", "datatype mismatch"),
        ("INSERT INTO s VALUES ('text')", "cannot store TEXT value in INTEGER column"),
        ("SELECT zeroblob(2000000000)", "string or blob too big"),
        ("SELECT abs(-9223372036854775808)", "integer overflow"),
    ],
)
def test_bad_values_raise_data_error(
    table: HonkerDatastore, tenant_file: Path, statement: str, fragment: str
) -> None:
    if statement.startswith("SELECT"):
        run: Callable[[], object] = lambda: table.query(statement)  # noqa: E731
    else:
        run = _write(table, statement)
    _raises(DataError, run, fragment, tenant_file)
    assert table.query("SELECT count(*) AS n FROM t") == [{"n": 1}]
    assert table.query("SELECT count(*) AS n FROM s") == [{"n": 0}]


def test_too_big_inside_a_write_transaction_raises_data_error(
    table: HonkerDatastore, tenant_file: Path
) -> None:
    run = _write(table, "INSERT INTO t (id, name, amount) VALUES (2, zeroblob(2000000000), 1)")
    _raises(DataError, run, "string or blob too big", tenant_file)
    _still_writes(table)


# -------------------------------------------------------------- InterfaceError


def test_a_closed_database_raises_interface_error(tenant_file: Path) -> None:
    datastore = HonkerDatastore(tenant_file)
    datastore.close()
    _raises(InterfaceError, _write(datastore, "SELECT 1"), "database is closed", tenant_file)
    _raises(InterfaceError, lambda: datastore.query("SELECT 1"), "database is closed", tenant_file)


# ------------------------------------------------------------ OperationalError


def test_writing_a_readonly_database_raises_operational_error(
    table: HonkerDatastore, tenant_file: Path
) -> None:
    # chmod 0444 does not stop root, and these tests may run as root; query_only makes
    # SQLite itself refuse the write with the same message a read-only file gives.
    def write_while_query_only() -> None:
        with table.transaction() as tx:
            tx.execute("PRAGMA query_only = 1")
            try:
                tx.execute("INSERT INTO t (id, name, amount) VALUES (2, 'two', 2)")
            finally:
                tx.execute("PRAGMA query_only = 0")

    _raises(
        OperationalError,
        write_while_query_only,
        "attempt to write a readonly database",
        tenant_file,
    )
    assert table.query("SELECT id FROM t") == [{"id": 1}]
    _still_writes(table)


def test_a_path_that_cannot_be_opened_raises_operational_error(tmp_path: Path) -> None:
    directory = tmp_path / "tenant-dir.db"
    directory.mkdir()
    _raises(
        OperationalError,
        lambda: HonkerDatastore(directory),
        "unable to open database file",
        directory,
    )
    assert directory.resolve() not in _honker._files  # nothing half-open is kept


def test_a_full_database_raises_operational_error(
    table: HonkerDatastore, tenant_file: Path
) -> None:
    # PRAGMA max_page_count caps the file: SQLite then fails exactly as on a full disk.
    def fill() -> None:
        with table.transaction() as tx:
            tx.query("PRAGMA max_page_count = 1")  # clamps to the current page count
            tx.execute("INSERT INTO t (id, name, amount) VALUES (2, zeroblob(1000000), 1)")

    try:
        _raises(OperationalError, fill, "database or disk is full", tenant_file)
    finally:
        with table.transaction() as tx:
            tx.query("PRAGMA max_page_count = 4294967294")
    assert table.query("SELECT id FROM t") == [{"id": 1}]


def test_a_full_database_writes_nothing(table: HonkerDatastore) -> None:
    # SQLite rolls back by itself here: nothing of the transaction is written and the
    # writer is usable again.
    with pytest.raises(PersistenceError), table.transaction() as tx:
        tx.query("PRAGMA max_page_count = 1")
        tx.execute("INSERT INTO t (id, name, amount) VALUES (2, 'two', 2)")
        tx.execute("INSERT INTO t (id, name, amount) VALUES (3, zeroblob(1000000), 1)")
    with table.transaction() as tx:
        tx.query("PRAGMA max_page_count = 4294967294")
    assert table.query("SELECT id FROM t") == [{"id": 1}]
    _still_writes(table)


@pytest.mark.multiprocess
def test_a_writer_past_the_busy_timeout_gets_operational_error_and_writes_nothing(
    tenant_file: Path,
) -> None:
    app = ledger(tenant_file, HONKER_BUSY_TIMEOUT="200")
    try:
        before = Account(owner="before")
        app.save(before)
        account = Account(owner="late")
        account.credit(1)
        account.credit(2)
        events = account.collect_events()  # saved as events: the retry saves the same ones

        with Worker("hold-lock", dbname=tenant_file) as holder:  # plain sqlite3, elsewhere
            holder.expect("locked")
            # The holder keeps the lock until told: the save gives up, it cannot wait it out.
            with pytest.raises(OperationalError) as info:
                app.save(*events)
            # Readers are not blocked by the other process's write lock.
            assert app.repository.get(before.id).owner == "before"
            holder.send("release")
            holder.expect("released")
            holder.finish()

        message = str(info.value)
        assert str(tenant_file) in message
        assert "HONKER_BUSY_TIMEOUT" in message
        assert "database is locked" in message
        # It waited the configured 200 ms, not Honker's default of 5 s: the setting is in
        # force on the connection that waited (how long it takes is benchmarks' business).
        assert app.factory.datastore.file.writer_setting("busy_timeout") == 200

        # Nothing of the failed save: not in the stream, not in the index.
        assert app.recorder.select_events(account.id) == []
        assert app.recorder.max_notification_id() == 1
        assert (
            index_matches_stream(app.factory.datastore, "Ledger", app.recorder.index_table_name)
            == 1
        )
        # The same events go in on retry (no index row was left behind to conflict).
        recordings = app.save(*events)
        assert [r.notification.id for r in recordings] == [2, 3, 4]
        assert app.repository.get(account.id).balance == 3
        assert (
            index_matches_stream(app.factory.datastore, "Ledger", app.recorder.index_table_name)
            == 4
        )
    finally:
        app.close()


# ---------------------------------------------------------------- DatabaseError


def test_a_file_that_is_not_a_database_raises_database_error(tenant_file: Path) -> None:
    tenant_file.write_bytes(b"this is a text file, not SQLite\n" * 256)
    _raises(
        DatabaseError, lambda: HonkerDatastore(tenant_file), "file is not a database", tenant_file
    )
    assert tenant_file.resolve() not in _honker._files


def test_a_corrupt_file_raises_database_error(tenant_file: Path) -> None:
    datastore = HonkerDatastore(tenant_file)
    with datastore.transaction() as tx:
        tx.execute("CREATE TABLE x (a TEXT)")
        for n in range(100):
            tx.execute("INSERT INTO x VALUES (?)", [f"row {n}"])
    root = datastore.query("SELECT rootpage FROM sqlite_schema WHERE name = 'x'")[0]["rootpage"]
    page_size = datastore.query("PRAGMA page_size")[0]["page_size"]
    datastore.query("PRAGMA wal_checkpoint(TRUNCATE)")  # the table's pages are in the file
    datastore.close()
    with tenant_file.open("r+b") as file:  # overwrite the table's root page with garbage
        file.seek(page_size * (root - 1))
        file.write(b"\xff" * page_size)

    datastore = HonkerDatastore(tenant_file)
    try:
        run = lambda: datastore.query("SELECT count(*) FROM x")  # noqa: E731
        _raises(DatabaseError, run, "database disk image is malformed", tenant_file)
        _raises(
            DatabaseError, _write(datastore, "INSERT INTO x VALUES ('y')"), "malformed", tenant_file
        )
    finally:
        datastore.close()


# ------------------------------------------------ the table, message by message

# SQLite's and Honker's exact messages (from the bundled libraries' strings) for every
# fragment of the table. The ones marked "classify only" cannot be produced on demand
# here: SQLITE_LOCKED needs shared-cache connections, SQLITE_IOERR a failing disk,
# SQLITE_INTERRUPT a call to sqlite3_interrupt (Honker exposes none), and "database is
# busy" is not an SQLite 3.45.1 message at all (no such string in the library).
MESSAGES: dict[str, type[PersistenceError]] = {
    "UNIQUE constraint failed: t.name": IntegrityError,
    "NOT NULL constraint failed: t.locked": IntegrityError,
    "CHECK constraint failed: amount > 0": IntegrityError,
    "FOREIGN KEY constraint failed": IntegrityError,
    "database is locked": OperationalError,
    "database table is locked: t": OperationalError,  # classify only
    "database is busy": OperationalError,  # classify only
    "attempt to write a readonly database": OperationalError,
    "Database error: unable to open database file: /x/y.db": OperationalError,
    "disk I/O error": OperationalError,  # classify only
    "database or disk is full": OperationalError,
    "interrupted": OperationalError,  # classify only
    "database disk image is malformed": DatabaseError,
    "Database error: file is not a database": DatabaseError,
    "Database error: Database is closed": InterfaceError,
    "Database is closed": InterfaceError,
    "datatype mismatch": DataError,
    "cannot store TEXT value in INTEGER column s.x": DataError,
    "string or blob too big": DataError,
    "integer overflow": DataError,
    "no such table: missing": ProgrammingError,
    "no such column: interrupted": ProgrammingError,
    "no such table: locked": ProgrammingError,
    "no such function: missing": ProgrammingError,
    'near "SELEC": syntax error': ProgrammingError,
    'near "interrupted": syntax error': ProgrammingError,
    "incomplete input": ProgrammingError,
    "wrong number of arguments to function abs()": ProgrammingError,
    "table t already exists": ProgrammingError,
    "nested db.transaction() is not supported: the writer is a single connection slot": (
        ProgrammingError
    ),
    "Safety level may not be changed inside a transaction": ProgrammingError,
    "Execute returned results - did you mean to call query?": ProgrammingError,
    "something Honker has never said before": DatabaseError,
    "": DatabaseError,
}


@pytest.mark.parametrize(("message", "expected"), MESSAGES.items())
def test_classify(message: str, expected: type[PersistenceError]) -> None:
    assert _honker.classify(message) is expected


def test_every_fragment_of_the_table_has_a_message_here() -> None:
    for fragment, error_class in _honker._ERROR_CLASSES:
        examples = [m for m in MESSAGES if fragment in m.lower()]
        assert examples, f"no test message for {fragment!r}"
        assert any(MESSAGES[m] is error_class for m in examples), fragment


def test_the_busy_advice_is_given_for_lock_errors_only(tmp_path: Path) -> None:
    def translated(message: str) -> str:
        with pytest.raises(PersistenceError) as info, _honker.translate_errors(tmp_path):
            raise RuntimeError(message)
        return str(info.value)

    assert "HONKER_BUSY_TIMEOUT" in translated("database is locked")
    # A column or table whose name says "locked" or "busy" is not a lock timeout.
    assert "HONKER_BUSY_TIMEOUT" not in translated("NOT NULL constraint failed: t.locked")
    assert "HONKER_BUSY_TIMEOUT" not in translated("no such table: busy_slots")


def test_a_constraint_on_a_column_named_locked_gets_no_busy_advice(
    table: HonkerDatastore, tenant_file: Path
) -> None:
    run = _write(table, "INSERT INTO t (id, name, amount, locked) VALUES (2, 'two', 2, NULL)")
    error = _raises(IntegrityError, run, "NOT NULL constraint failed: t.locked", tenant_file)
    assert "HONKER_BUSY_TIMEOUT" not in str(error)
