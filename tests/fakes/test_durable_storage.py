"""Finals through database outages (outputs/durable.py, outputs/spool.py): kept, written in order
once the database is back, each exactly once; the other sinks never wait for the database;
/healthz fails while writes pile up or the spool's disk is full."""
import asyncio
import json
import sqlite3
import subprocess
from contextlib import contextmanager
from datetime import datetime

import pytest

from audiosocket_bridge.asterisk.agi_server import FastAgiServer
from audiosocket_bridge.outputs.durable import WriterTiming
from audiosocket_bridge.outputs.presence import PresenceTiming
from audiosocket_bridge.outputs.spool import Spool, SpoolOptions, spool_path
from audiosocket_bridge.outputs.spool_records import final_record, start_record
from audiosocket_bridge.outputs.webhook_policy import Backoff, WebhookOptions
from tests.support.bridges import bridge_under_test, caller, run
from tests.support.builders import call_info, event
from tests.support.postgres import new_database, postgres_cluster
from tests.support.scrape import http_get, scrape, value
from tests.support.webhook_receiver import WebhookReceiver


# ---------------------------------------------------------------- the spool on its own

@contextmanager
def small_disk(path, size: str = "4m"):
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory) -> None:
    """Fills the disk to its last byte."""
    with open(directory / "filler", "ab", buffering=0) as out:
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    out.write(b"\0" * size)
            except OSError:
                pass


def records(n: int, start: int = 0) -> list[dict]:
    return [{"op": "final", "uuid": "u", "n": i} for i in range(start, start + n)]


def drain(spool: Spool) -> list[int]:
    taken = []
    while (record := spool.peek()) is not None:
        taken.append(record["n"])
        spool.pop()
    return taken


def test_the_spool_keeps_order_from_memory_through_the_file(tmp_path):
    spool = Spool(tmp_path / "s.jsonl", SpoolOptions(memory_records=3))
    for record in records(10):
        spool.put(record)
    assert spool.pending == 10 and spool.file_bytes > 0  # 3 in memory, 7 in the file
    assert (tmp_path / "s.jsonl").stat().st_mode & 0o777 == 0o600  # transcripts: owner only
    assert [spool.peek()["n"]] == [0]
    spool.pop()
    spool.put(records(1, 10)[0])  # memory has room again, but the file is not empty: after it
    assert drain(spool) == list(range(1, 11))
    assert spool.pending == 0 and (tmp_path / "s.jsonl").stat().st_size == 0


def test_a_spool_file_that_cannot_be_written_keeps_records_in_memory_then_counts_losses(tmp_path):
    spool = Spool(tmp_path / "missing-dir" / "s.jsonl", SpoolOptions(memory_records=2,
                                                                    memory_max=5))
    for record in records(7):
        spool.put(record)
    assert spool.pending == 5 and spool.dropped == 2
    assert drain(spool) == [0, 1, 2, 3, 4]


def test_records_that_came_while_the_disk_was_full_follow_the_file(tmp_path):
    with small_disk(tmp_path / "disk", "64k") as disk:
        spool = Spool(disk / "s.jsonl", SpoolOptions(memory_records=1))
        for record in records(3):  # 0 in memory, 1-2 in the file
            spool.put(record)
        fill(disk)
        for record in records(2, 3):  # the file cannot take them: memory, after the file
            spool.put(record)
        assert spool.pending == 5 and spool.dropped == 0
        (disk / "filler").unlink()
        spool.put(records(1, 5)[0])  # the file works again: 3, 4 and 5 go there, in order
        assert drain(spool) == [0, 1, 2, 3, 4, 5]
        spool.put(records(1, 6)[0])
        fill(disk)
        spool.put(records(1, 7)[0])
        assert drain(spool) == [6, 7]


def test_a_spool_left_by_a_run_is_read_first_and_a_torn_line_dropped(tmp_path):
    path = tmp_path / "s.jsonl"
    first = Spool(path, SpoolOptions(memory_records=2))
    for record in records(5):
        first.put(record)
    first.persist()  # shutdown with the database away: memory goes to the file too
    assert path.stat().st_mode & 0o777 == 0o600
    with open(path, "a") as out:
        out.write('{"op": "final", "uuid": "u", "n": 9')  # a crash mid-append
    second = Spool(path, SpoolOptions(memory_records=2))
    assert second.pending == 5
    second.put(records(1, 5)[0])
    assert drain(second) == [0, 1, 2, 3, 4, 5]


def test_spool_files_of_two_bridges_do_not_meet():
    assert spool_path("/var/lib/x", "host:8301") != spool_path("/var/lib/x", "host:8302")
    assert spool_path("/var/lib/x", "../../etc/passwd").parent.as_posix() == "/var/lib/x"


# ---------------------------------------------------------------- helpers

async def until(predicate, timeout_s: float = 30.0, step_s: float = 0.1) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await asyncio.to_thread(predicate):
        if loop.time() > deadline:
            return False
        await asyncio.sleep(step_s)
    return True


def assert_stored_once(bridge, call_uuid: str) -> None:
    """Storage has the call, ended by hangup, with every final the sinks saw, once, in order."""
    finals = bridge.live.finals(call_uuid)
    stored = bridge.storage.get_segments(call_uuid)
    assert [(s.index, s.text) for s in stored] == [(i, f.text) for i, f in enumerate(finals)]
    assert len(finals) >= 2
    call = bridge.storage.get_call(call_uuid)
    assert call.end_reason == "hangup" and call.ended_at is not None


def fast_webhook(url: str) -> WebhookOptions:
    return WebhookOptions(url=url, secret="s", timeout_s=2.0, poll_s=0.05, reconcile_s=0.2,
                          backoff=Backoff(base_s=0.05, cap_s=0.2))


# ---------------------------------------------------------------- PostgreSQL away mid-call

def test_postgresql_stopped_mid_call_and_a_call_started_while_it_is_down_lose_nothing(tmp_path):
    with postgres_cluster() as cluster, WebhookReceiver().up() as receiver:
        url = new_database(cluster.url)

        async def scenario():
            async with bridge_under_test(tmp_path, metrics=True, storage_url=url,
                                         webhook=fast_webhook(receiver.url)) as bridge:
                a = await caller(bridge).connect()
                await a.send_silence(1.0, realtime=True)
                assert await until(lambda: len(bridge.storage.get_segments(a.call_uuid)) == 1)
                await asyncio.to_thread(cluster.stop)
                b = await caller(bridge).connect()  # its start cannot be written
                await asyncio.gather(a.send_silence(2.0, realtime=True),
                                     b.send_silence(2.0, realtime=True))
                await b.finish("hangup")
                assert await until(lambda: bridge.live.has_ended(b.call_uuid), 5)

                status, body = await http_get(bridge.metrics_server.address, "/healthz")
                assert status == 503 and "storage" in body
                found = await scrape(bridge)
                assert value(found, "audiosocket_storage_available") == 0
                assert value(found, "audiosocket_storage_spooled") >= 4  # b: start, 2 finals, end
                agi = FastAgiServer("127.0.0.1", 0, bridge.storage, bridge.live,
                                    bridge.registrations)
                answer = await agi.lookup(b.call_uuid, 0.2)  # from memory while storage is away
                assert answer.status == "OK" and answer.text == "segment 0 segment 1"

                await asyncio.to_thread(cluster.start)
                await a.send_silence(1.0, realtime=True)
                await a.finish("hangup")
                assert await bridge.live.wait_ended(a.call_uuid, 30)
                assert await bridge.live.wait_ended(b.call_uuid, 30)
                for call_uuid in (a.call_uuid, b.call_uuid):
                    assert_stored_once(bridge, call_uuid)
                assert await asyncio.to_thread(receiver.wait_accepted, 2, 15)
                delivered = {r.document["uuid"]: r.document for r in receiver.requests}
                assert [s["text"] for s in delivered[b.call_uuid]["segments"]] == [
                    "segment 0", "segment 1"]
                found = await scrape(bridge)
                assert value(found, "audiosocket_storage_spooled") == 0
                assert value(found, "audiosocket_storage_errors_total") == 0
                assert value(found, "audiosocket_storage_available") == 1
                assert (await http_get(bridge.metrics_server.address, "/healthz"))[0] == 200
        run(scenario())


def test_a_shutdown_while_postgresql_is_down_keeps_the_writes_for_the_next_start(tmp_path):
    with postgres_cluster() as cluster:
        url = new_database(cluster.url)

        async def first_run():
            async with bridge_under_test(tmp_path, storage_url=url, bridge_id="b1") as bridge:
                bridge.storage_sink.timing = WriterTiming(close_wait_s=0.5)
                await asyncio.to_thread(cluster.stop)
                client = await caller(bridge).connect()
                await client.send_silence(2.5, realtime=True)
                await client.finish("hangup")
                assert await until(lambda: bridge.live.has_ended(client.call_uuid), 5)
                return client.call_uuid, [f.text for f in bridge.live.finals(client.call_uuid)]

        call_uuid, texts = run(first_run())
        spooled = [json.loads(line) for line in
                   open(spool_path(str(tmp_path), "b1"), encoding="utf-8")]
        assert [r["op"] for r in spooled] == ["start", "final", "final", "final", "end"]
        cluster.start()

        async def second_run():
            async with bridge_under_test(tmp_path, storage_url=url, bridge_id="b1") as bridge:
                assert await until(lambda: bridge.storage_sink.spool.pending == 0)
                assert [s.text for s in bridge.storage.get_segments(call_uuid)] == texts
                assert bridge.storage.get_call(call_uuid).end_reason == "hangup"
        run(second_run())


def test_a_stalled_statement_times_out_without_stalling_heartbeats(tmp_path):
    import psycopg

    with postgres_cluster() as cluster:
        url = new_database(cluster.url)

        def heartbeat(admin) -> datetime:
            return admin.execute("SELECT heartbeat_at FROM bridges").fetchone()[0]

        async def scenario():
            async with bridge_under_test(tmp_path, storage_url=url,
                                         presence=PresenceTiming(heartbeat_s=0.5)) as bridge:
                with psycopg.connect(url, autocommit=True) as admin:
                    client = await caller(bridge).connect()
                    await client.send_silence(0.5, realtime=True)  # the call's start lands
                    assert await until(lambda: bridge.storage.get_call(client.call_uuid))
                    admin.execute("BEGIN")
                    admin.execute("LOCK TABLE segments IN ACCESS EXCLUSIVE MODE")
                    await client.send_silence(2.0, realtime=True)  # its finals' INSERTs wait
                    before = heartbeat(admin)
                    await asyncio.sleep(6.0)  # past the 5 s statement_timeout
                    assert (heartbeat(admin) - before).total_seconds() >= 4.0  # beating on
                    assert bridge.storage_sink.available is False  # a statement timed out
                    assert bridge.storage_sink.spool.pending >= 2
                    admin.execute("ROLLBACK")
                await client.finish("hangup")
                assert await bridge.live.wait_ended(client.call_uuid, 30)
                assert_stored_once(bridge, client.call_uuid)
                assert bridge.storage_sink.errors == 0
        run(scenario())


def test_a_spool_left_by_a_bridge_killed_mid_call_is_written_and_the_call_ended(tmp_path):
    call = call_info()
    crashed = Spool(spool_path(str(tmp_path), "b1"), SpoolOptions(memory_records=0))
    crashed.put(start_record(call))  # as the writes of a run killed while its database was away
    crashed.put(final_record(call, event("final", 0, " Hello."), None))

    async def next_start():
        async with bridge_under_test(tmp_path, bridge_id="b1") as bridge:
            assert await until(lambda: bridge.storage_sink.spool.pending == 0)
            return bridge.storage.get_call(call.uuid), bridge.storage.get_segments(call.uuid)

    stored, segments = run(next_start())
    assert stored.end_reason == "bridge-lost" and stored.ended_at is not None  # not open for ever
    assert [s.text for s in segments] == [" Hello."]
    assert not spool_path(str(tmp_path), "b1").exists()  # written, so gone


# ---------------------------------------------------------------- no sink waits for storage

def test_a_locked_database_delays_no_other_sink(tmp_path):
    async def scenario():
        async with bridge_under_test(tmp_path, metrics=True) as bridge:
            locker = sqlite3.connect(f"{tmp_path}/calls.db", isolation_level=None)
            locker.execute("BEGIN IMMEDIATE")  # as another writer holding the lock would
            try:
                client = await caller(bridge).connect()  # its start waits 2 s, then goes on
                await client.send_silence(2.0, realtime=True)

                async def finals_seen() -> float:  # BridgeMetrics comes after storage
                    return value(await scrape(bridge), "audiosocket_transcripts_total", kind="final")
                for _ in range(100):
                    if await finals_seen() == 2:
                        break
                    await asyncio.sleep(0.1)
                assert await finals_seen() == 2
                assert bridge.storage_sink.spool.pending >= 3  # start, 2 finals, none written
            finally:
                locker.execute("ROLLBACK")
                locker.close()
            await client.finish("hangup")
            assert await bridge.live.wait_ended(client.call_uuid, 40)
            assert_stored_once(bridge, client.call_uuid)
    run(scenario())


# ---------------------------------------------------------------- a full disk

def test_a_full_disk_fails_healthz_and_keeps_the_finals(tmp_path):
    with small_disk(tmp_path / "disk") as disk:
        async def scenario():
            async with bridge_under_test(disk, metrics=True, spool=SpoolOptions(memory_records=2)) \
                    as bridge:
                assert (await http_get(bridge.metrics_server.address, "/healthz"))[0] == 200
                await asyncio.to_thread(fill, disk)
                client = await caller(bridge).connect()
                await client.send_silence(3.0, realtime=True)
                await client.finish("hangup")
                assert await until(lambda: bridge.live.has_ended(client.call_uuid), 5)
                status, body = await http_get(bridge.metrics_server.address, "/healthz")
                assert status == 503 and "spool disk: No space left on device" in body
                (disk / "filler").unlink()
                assert await bridge.live.wait_ended(client.call_uuid, 30)
                assert_stored_once(bridge, client.call_uuid)
                assert bridge.storage_sink.spool.dropped == 0
                assert (await http_get(bridge.metrics_server.address, "/healthz"))[0] == 200
        run(scenario())
