"""Several bridges on one database: schema migrations that concurrent starts cannot corrupt, and a
call's state (live on which bridge, ended, lost with a dead bridge) visible to every bridge."""
import asyncio
import sqlite3
import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from audiosocket_bridge.asterisk.agi_server import FastAgiServer
from audiosocket_bridge.outputs.live import LiveCalls
from audiosocket_bridge.outputs.migrations import (LATEST_VERSION, MIGRATIONS, Migration, migrate,
                                                   pending)
from audiosocket_bridge.outputs.presence import (LOST_REASON, BridgePresence, PresenceTiming,
                                                 call_state)
from audiosocket_bridge.outputs.storage import SqliteDialect, StoredCall, open_storage
from audiosocket_bridge.registrations import CallOptions, Registrations
from tests.support.builders import UUID_A, call_info, event
from tests.support.storages import bridges_on

T0 = datetime(2026, 12, 1, 9, 0, 0, tzinfo=timezone.utc)
ALL_VERSIONS = sorted(m.version for m in MIGRATIONS)  # applied in version order


def versions(storage) -> list[int]:
    return [row[0] for row in storage._query("SELECT version FROM schema_migrations ORDER BY 1")]


# ---------------------------------------------------------------- migrations

def test_fresh_database_is_migrated_to_the_latest_version(database_url):
    storage = open_storage(database_url, bridge_id="a")
    try:
        assert versions(storage) == ALL_VERSIONS
        assert versions(storage)[-1] == LATEST_VERSION
        storage.record_call_start(call_info(options=CallOptions(grammar="digits:4")))
        assert storage.get_call(UUID_A).bridge_id == "a"
        assert storage.get_call(UUID_A).grammar == "digits:4"
    finally:
        storage.close()
    again = open_storage(database_url, bridge_id="b")  # a second start applies nothing
    try:
        assert versions(again) == ALL_VERSIONS
    finally:
        again.close()


def test_database_of_the_release_before_migrations_is_upgraded_in_place(tmp_path):
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    for statement in MIGRATIONS[0].statements:  # what that release created, nothing else
        old.execute(statement.format(timestamp="TEXT"))
    old.execute("INSERT INTO calls (uuid, started_at, end_reason) VALUES (?, ?, 'hangup')",
                (UUID_A, T0.isoformat()))
    old.execute("INSERT INTO segments (uuid, segment_index, start_s, end_s, text) "
                "VALUES (?, 0, 0.5, 1.5, ' Kept.')", (UUID_A,))
    old.commit()
    old.close()
    storage = open_storage(f"sqlite:///{path}", bridge_id="a")
    try:
        assert versions(storage) == ALL_VERSIONS
        assert storage.transcript_text(UUID_A) == "Kept."
        assert storage.get_call(UUID_A).end_reason == "hangup"
        assert storage.get_call(UUID_A).bridge_id is None
    finally:
        storage.close()


def test_bridges_starting_at_once_migrate_once(database_url):
    starters = 8
    barrier = threading.Barrier(starters)
    errors: list[BaseException] = []
    opened = []

    def start(index: int) -> None:
        barrier.wait()
        try:
            opened.append(open_storage(database_url, bridge_id=f"bridge-{index}"))
        except BaseException as error:  # noqa: BLE001 - collected for the assertion
            errors.append(error)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(starters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert not errors, errors
        assert len(opened) == starters
        assert versions(opened[0]) == ALL_VERSIONS
    finally:
        for storage in opened:
            storage.close()


def test_a_failing_migration_leaves_the_schema_as_it_was(tmp_path):
    connection = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    broken = MIGRATIONS + (Migration(LATEST_VERSION + 1, "half of it fails", (
        "CREATE TABLE half_done (x INTEGER)", "THIS IS NOT SQL")),)
    with pytest.raises(sqlite3.OperationalError):
        migrate(connection, SqliteDialect(), broken)
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert "half_done" not in tables and "calls" not in tables  # one transaction: all or nothing
    assert migrate(connection, SqliteDialect()) == ALL_VERSIONS


def test_a_version_missing_below_the_applied_ones_is_applied_later(tmp_path):
    """Versions are numbered when work starts, so a database may have 5 before it meets 4."""
    connection = sqlite3.connect(tmp_path / "gap.db", isolation_level=None)
    later = Migration(LATEST_VERSION + 2, "came first", ("CREATE TABLE later (x INTEGER)",))
    earlier = Migration(LATEST_VERSION + 1, "came second", ("CREATE TABLE earlier (x INTEGER)",))
    assert migrate(connection, SqliteDialect(), MIGRATIONS + (later,))[-1] == later.version
    applied = migrate(connection, SqliteDialect(), MIGRATIONS + (later, earlier))
    assert applied == [earlier.version]
    both = MIGRATIONS + (later, earlier)
    assert [m.version for m in pending(set(), both)] == sorted(m.version for m in both)


# ---------------------------------------------------------------- call state

def stored(ended_at=None, heartbeat_at=T0, stopped_at=None) -> StoredCall:
    return StoredCall(UUID_A, None, T0, ended_at, None, None, (), "a", None, heartbeat_at,
                      stopped_at)


@pytest.mark.parametrize("call, seconds_later, expected", [
    (stored(), 1.0, "live"),
    (stored(), PresenceTiming().silent_after_s + 1, "lost"),
    (stored(ended_at=T0), 100.0, "ended"),
    (stored(stopped_at=T0), 1.0, "lost"),
    (stored(heartbeat_at=None), 1.0, "lost"),
])
def test_call_state(call, seconds_later, expected):
    assert call_state(call, T0 + timedelta(seconds=seconds_later)) == expected


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def record_live_call(storage, text: str = " First words."):
    call = call_info(started_at=T0)
    storage.record_call_start(call)
    storage.record_final(call, event("final", 0, text))
    return call


async def agi_lookup(storage, wait_s: float):
    server = FastAgiServer("127.0.0.1", 0, storage, LiveCalls(), Registrations())
    return await server.lookup(UUID_A, wait_s)


def test_a_call_live_on_another_bridge_is_pending_there_then_ok(database_url):
    with bridges_on(database_url, "owner", "other") as (owner, other):

        async def scenario():
            presence = BridgePresence(owner, "10.0.0.1:8300", PresenceTiming(heartbeat_s=0.2))
            await presence.start()
            call = record_live_call(owner)
            pending = await agi_lookup(other, 0.0)
            assert (pending.status, pending.text, pending.segments) == ("PENDING", "First words.", 1)

            async def hang_up_soon():
                await asyncio.sleep(0.6)
                call.ended_at, call.end_reason = datetime.now(timezone.utc), "hangup"
                owner.record_call_end(call)

            ending = asyncio.create_task(hang_up_soon())
            done = await agi_lookup(other, 5.0)  # waits across bridges for the end
            await ending
            await presence.close()
            return done

        done = asyncio.run(scenario())
        assert (done.status, done.text) == ("OK", "First words.")


def test_calls_of_a_bridge_that_died_are_marked_lost_by_another(database_url):
    with bridges_on(database_url, "dead", "alive") as (dead, alive):
        clock = Clock(T0)

        async def scenario():
            dead.record_bridge_start("10.0.0.1:8300", T0)  # then it stops beating (SIGKILL)
            record_live_call(dead)
            survivor = BridgePresence(alive, "10.0.0.2:8300", clock=clock)
            clock.now = T0 + timedelta(seconds=1)
            await survivor.start()
            assert alive.get_call(UUID_A).ended_at is None  # silent for 1 s: still live
            clock.now = T0 + timedelta(seconds=PresenceTiming().silent_after_s + 1)
            await survivor._sweep(clock.now)
            return await agi_lookup(alive, 10.0)

        result = asyncio.run(asyncio.wait_for(scenario(), 5.0))  # no waiting on a dead bridge
        lost = alive.get_call(UUID_A)
        assert lost.end_reason == LOST_REASON and lost.ended_at is not None
        assert (result.status, result.text) == ("OK", "First words.")


def test_a_bridge_restarted_after_a_crash_ends_the_calls_it_left_open(tmp_path):
    url = f"sqlite:///{tmp_path}/one.db"
    crashed = open_storage(url, bridge_id="pbx1-bridge")
    crashed.record_bridge_start("127.0.0.1:8300", T0)
    record_live_call(crashed)
    crashed.close()  # no record_call_end, no record_bridge_stop
    restarted = open_storage(url, bridge_id="pbx1-bridge")

    async def start_presence():
        presence = BridgePresence(restarted, "127.0.0.1:8300")
        await presence.start()
        await presence.close()

    try:
        asyncio.run(start_presence())
        assert restarted.get_call(UUID_A).end_reason == LOST_REASON
        assert restarted.get_segments(UUID_A)[0].text == " First words."
    finally:
        restarted.close()


def test_a_second_bridge_continues_a_call_the_first_lost(database_url):
    with bridges_on(database_url, "first", "second") as (first, second):
        record_live_call(first)  # then `first` dies; the dialplan runs AudioSocket() again
        call = replace(call_info(started_at=T0 + timedelta(seconds=9)))
        second.record_call_start(call)
        second.record_final(call, event("final", 0, " After the failover."))
        taken = second.get_call(UUID_A)
        assert taken.bridge_id == "second" and taken.ended_at is None
        assert [s.text for s in second.get_segments(UUID_A)] == [" First words.",
                                                                 " After the failover."]


def test_registered_by_fastagi_on_one_bridge_and_found_by_another(database_url):
    from tests.support.fake_agi_client import run_agi

    with bridges_on(database_url, "first", "second") as (first, second):

        async def scenario():
            agi = FastAgiServer("127.0.0.1", 0, first, LiveCalls(), Registrations(shared=first))
            await agi.start()
            try:
                await run_agi("127.0.0.1", agi.port, f"agi://127.0.0.1/register?uuid={UUID_A}"
                              "&mode=ivr&grammar=digits:4-10&language=de", channel="PJSIP/carol-1")
            finally:
                await agi.close()
            # the call's AudioSocket() reached the other bridge (HAProxy in front)
            return await Registrations(shared=second).wait_for(UUID_A, 0.0)

        found = asyncio.run(scenario())
        assert found.channel == "PJSIP/carol-1"
        assert (found.options.mode, found.options.grammar, found.options.language) == (
            "ivr", "digits:4-10", "de")


def test_postgresql_connection_cut_is_reopened_and_nothing_is_lost(postgres_url):
    import psycopg

    storage = open_storage(postgres_url, bridge_id="a")
    try:
        call = record_live_call(storage)
        with psycopg.connect(postgres_url, autocommit=True) as admin:  # as a server restart does
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        storage.record_final(call, event("final", 1, " After the cut."))
        assert [s.text for s in storage.get_segments(UUID_A)] == [" First words.", " After the cut."]
        with pytest.raises(psycopg.errors.UndefinedTable):  # a bad statement is not retried
            storage._query("SELECT * FROM no_such_table")
    finally:
        storage.close()


def test_a_bridge_opening_the_file_while_another_migrates_it_waits_for_wal(tmp_path):
    """SQLite refuses the switch to WAL at once, without its busy wait, while another connection
    holds the write lock (what made one of 8 bridges starting at once fail, "database is locked")."""
    path = tmp_path / "starting.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE t (x INTEGER)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(sqlite3.OperationalError, match="locked"):  # SQLite's own answer
        sqlite3.connect(path, timeout=30, isolation_level=None).execute("PRAGMA journal_mode=WAL")
    threading.Timer(0.3, lambda: other.execute("COMMIT")).start()
    storage = open_storage(f"sqlite:///{path}", bridge_id="late")
    try:
        assert storage.journal_mode == "wal"
    finally:
        storage.close()
        other.close()
