"""Fault suite (FakeEngine, seconds to run): junk input, failing storage, abrupt
disconnects and overload never crash the server, and good calls next to them
still complete and are stored."""
import asyncio
import random
import sqlite3
import struct
import uuid

import pytest

from audiosocket_bridge.testing.audiosocket_client import SLIN_KINDS, message
from tests.support.bridges import assert_good, bridge_under_test, caller, good_call, run
from tests.support.scrape import scrape, value

FUZZ_SEED = 20240505
FUZZ_CONNECTIONS = 60
FUZZ_CONCURRENCY = 6


def junk(rng: random.Random) -> bytes:
    """Random bytes, random frames, or a valid start cut off mid-frame."""
    start = message(0x01, uuid.uuid4().bytes)
    choice = rng.randrange(5)
    if choice == 0:  # pure noise, maybe huge
        return rng.randbytes(rng.choice([1, 2, 3, 17, 400, 5000, 70000]))
    if choice == 1:  # frames of random kind and length, declared length honest or not
        out = bytearray(start if rng.random() < 0.7 else b"")
        for _ in range(rng.randrange(1, 20)):
            payload = rng.randbytes(rng.randrange(0, 700))
            length = len(payload) if rng.random() < 0.8 else rng.randrange(0, 65536)
            out += bytes([rng.randrange(256)]) + struct.pack("!H", length) + payload
        return bytes(out)
    if choice == 2:  # good audio, then a frame truncated in the header or payload
        audio = message(SLIN_KINDS[8000], bytes(320)) * rng.randrange(1, 30)
        cut = message(SLIN_KINDS[8000], bytes(320))[:rng.randrange(1, 322)]
        return start + audio + cut
    if choice == 3:  # valid audio of a random rate with an odd or zero length
        kind = rng.choice(list(SLIN_KINDS.values()))
        return start + bytes([kind]) + struct.pack("!H", rng.choice([0, 1, 321])) + bytes(321)
    return start + message(0x03, rng.randbytes(rng.randrange(0, 4))) + message(0x01, rng.randbytes(16))


async def throw_junk(bridge, data: bytes, rng: random.Random) -> None:
    client = await caller(bridge).connect(send_uuid=False)
    step = rng.choice([1, 7, 64, len(data) or 1])
    for offset in range(0, len(data), step):  # in pieces: frames split across reads
        if not await client.send_bytes(data[offset:offset + step]):
            break
    if rng.random() < 0.5:
        client.writer.transport.abort()  # RST, possibly mid-frame
    else:
        await client.close()
    await client.wait_server_end(5)


def test_random_input_never_crashes_the_server(tmp_path):
    rng = random.Random(FUZZ_SEED)
    payloads = [junk(rng) for _ in range(FUZZ_CONNECTIONS)]

    async def scenario():
        async with bridge_under_test(tmp_path, metrics=True, max_calls=50, idle_timeout_s=2.0) as bridge:
            good = asyncio.create_task(good_call(bridge, 2.0))
            limit = asyncio.Semaphore(FUZZ_CONCURRENCY)

            async def one(data, seed):
                async with limit:
                    await throw_junk(bridge, data, random.Random(seed))
            await asyncio.gather(*(one(d, i) for i, d in enumerate(payloads)))
            assert_good(bridge, await good, 2.0, "hangup", stalls=True)
            assert_good(bridge, await good_call(bridge, 1.0), 1.0, "hangup")  # still serving
            for _ in range(50):
                if bridge.server.active_calls == 0:
                    break
                await asyncio.sleep(0.1)
            assert bridge.server.active_calls == 0  # every junk connection was cleaned up
            found = await scrape(bridge)
            assert value(found, "audiosocket_connections_total") == FUZZ_CONNECTIONS + 2
            assert value(found, "audiosocket_protocol_errors_total") >= 1
            assert value(found, "audiosocket_active_calls") == 0
    run(scenario())


def test_a_final_storage_refuses_for_good_is_counted_and_the_call_goes_on(tmp_path):
    async def scenario():
        async with bridge_under_test(tmp_path, metrics=True) as bridge:
            def broken(call, event):  # not a failure that passes: tried again, it would fail again
                raise sqlite3.IntegrityError("CHECK constraint failed: segments")
            bridge.storage.record_final = broken
            call_uuid = await good_call(bridge, 2.0)
            assert bridge.engine.stream(call_uuid).pushed_s == pytest.approx(2.0)
            assert len(bridge.live.finals(call_uuid)) == 2  # other sinks still saw them
            stored = bridge.storage.get_call(call_uuid)
            assert stored.end_reason == "hangup" and bridge.storage.get_segments(call_uuid) == []
            found = await scrape(bridge)
            assert value(found, "audiosocket_storage_errors_total") == 2
            assert value(found, "audiosocket_calls_ended_total", reason="hangup") == 1
    run(scenario())


@pytest.mark.parametrize("how", ["close", "abort"])
def test_disconnect_mid_frame_stores_the_call(tmp_path, how):
    async def scenario():
        async with bridge_under_test(tmp_path, metrics=True) as bridge:
            client = await caller(bridge).connect()
            await client.send_silence(1.5)
            await client.send_bytes(message(SLIN_KINDS[8000], bytes(320))[:100])  # half a frame
            await asyncio.sleep(0.1)
            if how == "abort":
                client.writer.transport.abort()
            else:
                await client.close()
            assert await bridge.live.wait_ended(client.call_uuid, 5)
            stored = bridge.storage.get_call(client.call_uuid)
            assert stored.ended_at is not None and stored.end_reason
            assert bridge.storage.transcript_text(client.call_uuid) == "segment 0 segment 1"
            assert bridge.engine.stream(client.call_uuid).pushed_s == pytest.approx(1.5)
    run(scenario())


def test_call_closed_without_hangup_is_stored(tmp_path):
    async def scenario():
        async with bridge_under_test(tmp_path, metrics=True) as bridge:
            call_uuid = await good_call(bridge, 1.0, end="close")
            assert_good(bridge, call_uuid, 1.0, "closed")
    run(scenario())


def test_overload_refuses_extra_connections_while_calls_continue(tmp_path):
    async def scenario():
        async with bridge_under_test(tmp_path, metrics=True, max_calls=3) as bridge:
            calls = [asyncio.create_task(good_call(bridge, 2.0)) for _ in range(3)]
            await asyncio.sleep(0.3)
            extras = [await caller(bridge).connect() for _ in range(30)]
            for extra in extras:
                assert await extra.wait_server_end(5) and extra.server_hangup
            for call in calls:
                assert_good(bridge, await call, 2.0, "hangup")
            assert bridge.server.stats.connections_refused == 30
            found = await scrape(bridge)
            assert value(found, "audiosocket_connections_refused_total") == 30
            assert value(found, "audiosocket_calls_ended_total", reason="hangup") == 3
    run(scenario())
