"""The TCP server with FakeEngine (tests/support/fake_engine.py): no transcription is checked here.

Every bad-input case runs next to a good call that must finish untouched.
"""
import asyncio
import logging
import struct
import uuid

import pytest

from audiosocket_bridge.audiosocket.protocol import encode_hangup
from whisper.streaming.pcm import FRAMES_PER_S, frame_bytes
from audiosocket_bridge.outputs.storage import open_storage
from audiosocket_bridge.registrations import CallOptions, Registration
from audiosocket_bridge.testing.audiosocket_client import AudioSocketClient, message
from tests.support.bridges import assert_good, bridge_under_test, caller, good_call, run
from tests.support.fake_engine import FakeEngine


@pytest.mark.parametrize("end, reason", [("hangup", "hangup"), ("close", "closed")])
def test_good_call_is_stored(tmp_path, end, reason):
    async def scenario():
        async with bridge_under_test(tmp_path) as bridge:
            call_uuid = await good_call(bridge, 2.0, end)
            assert_good(bridge, call_uuid, 2.0, reason)
    run(scenario())


BAD_INPUTS = {
    "missing-uuid": message(0x10, bytes(320)),
    "malformed-uuid": message(0x01, bytes(8)),
    "unknown-kind": message(0x01, uuid.uuid4().bytes) + message(0x42, b"x"),
    "oversize-length": message(0x01, uuid.uuid4().bytes) + b"\x10\xff\xfe",
    "odd-audio": message(0x01, uuid.uuid4().bytes) + message(0x10, bytes(321)),
    "zero-audio": message(0x01, uuid.uuid4().bytes) + message(0x10),
    "truncated-header": message(0x01, uuid.uuid4().bytes) + b"\x10\x01",
    "truncated-payload": message(0x01, uuid.uuid4().bytes) + b"\x10\x01\x40" + bytes(100),
    "second-uuid": message(0x01, uuid.uuid4().bytes) * 2,
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_closes_only_that_connection(tmp_path, case, caplog):
    async def scenario():
        async with bridge_under_test(tmp_path, max_frame_bytes=4096) as bridge:
            good = asyncio.create_task(good_call(bridge, 2.0))
            await asyncio.sleep(0.3)
            bad = await caller(bridge).connect(send_uuid=False)
            await bad.send_bytes(BAD_INPUTS[case])
            if case.startswith("truncated"):
                await asyncio.sleep(0.1)
                await bad.close()
            else:
                assert await bad.wait_server_end(5)
                assert bad.server_hangup  # told the way Asterisk understands
            assert_good(bridge, await good, 2.0, "hangup")
            return bridge
    with caplog.at_level(logging.INFO, logger="audiosocket_bridge"):
        run(scenario())
    bad_lines = [r for r in caplog.records if "bad input" in r.getMessage()]
    assert len(bad_lines) == 1, [r.getMessage() for r in caplog.records]


def test_bad_input_after_start_still_stores_the_call(tmp_path):
    async def scenario():
        async with bridge_under_test(tmp_path) as bridge:
            client = await caller(bridge).connect()
            await client.send_silence(1.0)
            await client.send_bytes(message(0x42, b"?"))
            assert await client.wait_server_end(5) and client.server_hangup
            assert await bridge.live.wait_ended(client.call_uuid, 5)
            stored = bridge.storage.get_call(client.call_uuid)
            assert stored.end_reason == "error: unknown message kind 0x42"
            assert bridge.storage.transcript_text(client.call_uuid) == "segment 0"
    run(scenario())


def test_max_calls_refuses_extra_connections(tmp_path, caplog):
    async def scenario():
        async with bridge_under_test(tmp_path, max_calls=2) as bridge:
            first = [await caller(bridge).connect() for _ in range(2)]
            await asyncio.sleep(0.1)
            extra = await caller(bridge).connect()
            assert await extra.wait_server_end(5) and extra.server_hangup
            assert bridge.server.stats.connections_refused == 1
            for client in first:
                await client.send_silence(0.2)
                assert not client.ended
                await client.finish("hangup")
                assert await bridge.live.wait_ended(client.call_uuid, 5)
    with caplog.at_level(logging.WARNING, logger="audiosocket_bridge"):
        run(scenario())
    assert any("refusing connection" in r.getMessage() for r in caplog.records)


def test_idle_timeout_closes_silent_and_half_open_clients(tmp_path):
    async def scenario():
        async with bridge_under_test(tmp_path, idle_timeout_s=0.5) as bridge:
            silent = await caller(bridge).connect(send_uuid=False)
            half = await caller(bridge).connect()
            await half.send_silence(0.4)
            good = asyncio.create_task(good_call(bridge, 1.0))
            assert await silent.wait_server_end(3) and silent.server_hangup
            assert await half.wait_server_end(3) and half.server_hangup
            assert await bridge.live.wait_ended(half.call_uuid, 3)
            assert bridge.live.get(half.call_uuid).end_reason == "idle-timeout"
            assert_good(bridge, await good, 1.0, "hangup")
    run(scenario())


def test_raw_mode_generates_uuid(tmp_path):
    async def scenario():
        async with bridge_under_test(tmp_path, raw=True) as bridge:
            client = await caller(bridge).connect(send_uuid=False)
            for _ in range(FRAMES_PER_S):  # 1 s of bare 16 kHz slin in 20 ms chunks
                await client.send_bytes(bytes(frame_bytes(16000)))
            await client.close()
            await asyncio.sleep(0.2)
            (stream_id, stream), = bridge.engine.streams.items()
            assert await bridge.live.wait_ended(stream_id, 5)
            assert uuid.UUID(stream_id) and stream.rates_hz == [16000]
            assert stream.pushed_s == pytest.approx(1.0)
            assert bridge.live.get(stream_id).end_reason == "closed"
    run(scenario())


def test_sample_rate_change_mid_call(tmp_path):
    async def scenario():
        async with bridge_under_test(tmp_path) as bridge:
            client = await caller(bridge).connect()
            await client.send_silence(0.2, 8000)
            await client.send_silence(0.2, 16000)
            await client.finish("hangup")
            assert await bridge.live.wait_ended(client.call_uuid, 5)
            assert bridge.engine.stream(client.call_uuid).rates_hz == [8000, 16000]
            assert bridge.live.get(client.call_uuid).sample_rate_hz == 16000
    run(scenario())


def test_shutdown_flushes_and_stores_in_flight_calls(tmp_path):
    async def scenario():
        bridge = bridge_under_test(tmp_path, FakeEngine(final_every_s=100, flush_delay_s=0.2))
        await bridge.start()
        clients = [await caller(bridge).connect() for _ in range(3)]
        for client in clients:
            await client.send_silence(0.5)
        await asyncio.sleep(0.2)
        address = bridge.address
        await bridge.close()  # shutdown deadline 10 s
        storage = open_storage(f"sqlite:///{tmp_path}/calls.db")  # close() closed the sinks
        for client in clients:
            assert client.server_hangup
            assert storage.get_call(client.call_uuid).end_reason == "shutdown"
            assert storage.transcript_text(client.call_uuid) == "segment 0"
        # stopped accepting
        with pytest.raises(OSError):
            await AudioSocketClient(*address).connect()
    run(scenario())


def test_ivr_mode_hangs_up_after_first_final(tmp_path):
    async def scenario():
        async with bridge_under_test(tmp_path, registration_wait_s=2.0) as bridge:
            client = caller(bridge)
            bridge.registrations.register(Registration(client.call_uuid, channel="PJSIP/bob-1",
                                                       options=CallOptions(mode="ivr")))
            await client.connect()
            await client.send_silence(3.0, realtime=True)  # FakeEngine: a final per second
            assert client.server_hangup
            assert await bridge.live.wait_ended(client.call_uuid, 5)
            info = bridge.live.get(client.call_uuid)
            assert info.end_reason == "ivr-final" and info.registration.channel == "PJSIP/bob-1"
            assert bridge.storage.get_call(client.call_uuid).channel == "PJSIP/bob-1"
    run(scenario())


def test_ivr_no_input_timeout(tmp_path):
    async def scenario():
        async with bridge_under_test(tmp_path) as bridge:
            client = caller(bridge)
            options = CallOptions(mode="ivr", no_input_timeout_s=0.3)
            bridge.registrations.register(Registration(client.call_uuid, options=options))
            await client.connect()
            assert await client.wait_server_end(3) and client.server_hangup
            assert await bridge.live.wait_ended(client.call_uuid, 3)
            assert bridge.live.get(client.call_uuid).end_reason == "ivr-no-input"
    run(scenario())


def test_registration_waits_for_late_ami_event(tmp_path):
    async def scenario():
        async with bridge_under_test(tmp_path, registration_wait_s=2.0) as bridge:
            client = await caller(bridge).connect()
            await client.send_silence(0.3)
            bridge.registrations.register(Registration(client.call_uuid.upper(), channel="SIP/late-1",
                                                       options=CallOptions(partials=False)))
            await client.finish("hangup")
            assert await bridge.live.wait_ended(client.call_uuid, 5)
            assert bridge.live.get(client.call_uuid).registration.channel == "SIP/late-1"
            assert bridge.engine.stream(client.call_uuid).options.partials is False
            assert bridge.engine.stream(client.call_uuid).pushed_s == pytest.approx(0.3)
    run(scenario())


def test_hangup_frame_is_one_write(tmp_path, monkeypatch):
    """Asterisk reads the 3-byte header with one read(), so it must arrive whole."""
    writes = []
    original = asyncio.StreamWriter.write

    def spy(self, data):
        writes.append(bytes(data))
        return original(self, data)

    monkeypatch.setattr(asyncio.StreamWriter, "write", spy)

    async def scenario():
        async with bridge_under_test(tmp_path) as bridge:
            client = await caller(bridge).connect(send_uuid=False)
            await client.send_bytes(struct.pack(">BH", 0x42, 0))
            assert await client.wait_server_end(3) and client.server_hangup
    run(scenario())
    assert encode_hangup() in writes


def test_hangup_frame_then_reads_until_asterisk_closes(tmp_path):
    """After its hangup frame the bridge half-closes and keeps reading: frames Asterisk sends
    before it has read the hangup must not meet a closed socket (RST makes Asterisk's
    AudioSocket() return -1 and hang the call up)."""
    async def scenario():
        async with bridge_under_test(tmp_path) as bridge:
            call_uuid = str(uuid.uuid4())
            bridge.registrations.register(Registration(call_uuid, options=CallOptions(mode="ivr")))
            reader, writer = await asyncio.open_connection(*bridge.address)
            writer.write(message(0x01, uuid.UUID(call_uuid).bytes))
            received = b""
            while b"\x00\x00\x00" not in received:  # FakeEngine: a final after 1 s of audio
                writer.write(message(0x10, bytes(320)))
                await writer.drain()
                try:
                    received += await asyncio.wait_for(reader.read(4096), 0.02)
                except asyncio.TimeoutError:
                    pass
            assert await reader.read() == b""  # half-closed by the bridge
            for _ in range(20):  # Asterisk's frames in flight, 400 ms of them
                writer.write(message(0x10, bytes(320)))
                await writer.drain()
                await asyncio.sleep(0.02)
            writer.close()
            await writer.wait_closed()
            assert await bridge.live.wait_ended(call_uuid, 5)
            assert bridge.live.get(call_uuid).end_reason == "ivr-final"
    run(scenario())


def test_keepalive_holds_a_silent_asterisk_and_gap_is_filled(tmp_path):
    """Asterisk (this client) sends nothing for 3 s: the bridge's silence frames keep its 2 s
    no-activity timeout from firing, and the engine is fed the gap in real time."""
    async def scenario():
        async with bridge_under_test(tmp_path) as bridge:
            client = await caller(bridge).connect()
            await client.send_silence(0.5, realtime=True)
            await asyncio.sleep(3.0)
            assert not client.timed_out and not client.ended
            assert len(client.received_audio) >= 320 * 4  # 20 ms frames, one per 0.5 s of quiet
            assert bytes(client.received_audio) == bytes(len(client.received_audio))
            pushed_s = bridge.engine.stream(client.call_uuid).pushed_s
            assert 2.5 <= pushed_s <= 3.6  # 0.5 s sent, then the gap as silence
            await client.finish("hangup")
            assert await bridge.live.wait_ended(client.call_uuid, 5)
    run(scenario())


def test_keepalive_zero_sends_nothing_back(tmp_path):
    async def scenario():
        async with bridge_under_test(tmp_path, keepalive_s=0) as bridge:
            client = await caller(bridge).connect()
            await client.send_silence(0.2, realtime=True)
            await asyncio.sleep(1.2)
            assert client.received_audio == bytearray() and not client.ended
            await client.finish("hangup")
            assert await bridge.live.wait_ended(client.call_uuid, 5)
    run(scenario())


def test_gap_fill_is_bounded(tmp_path, monkeypatch):
    from audiosocket_bridge.audiosocket import session
    from audiosocket_bridge.audiosocket.media_gaps import GapFiller

    monkeypatch.setattr(session, "GapFiller", lambda: GapFiller(max_s=1.0))  # 5 s would be slow

    async def scenario():
        async with bridge_under_test(tmp_path) as bridge:
            client = await caller(bridge).connect()
            await client.send_silence(0.2, realtime=True)
            await asyncio.sleep(2.5)
            assert bridge.engine.stream(client.call_uuid).pushed_s == pytest.approx(1.2, abs=0.05)
            await client.finish("hangup")
    run(scenario())


def test_an_error_message_from_asterisk_is_logged_and_the_call_goes_on(tmp_path, caplog):
    async def scenario():
        async with bridge_under_test(tmp_path) as bridge:
            client = await caller(bridge).connect()
            await client.send_silence(0.2)
            await client.send_bytes(message(0xFF, bytes([0x04])))
            await client.send_silence(0.2)
            await client.finish("hangup")
            assert await bridge.live.wait_ended(client.call_uuid, 5)
            assert bridge.live.get(client.call_uuid).end_reason == "hangup"
            assert bridge.engine.stream(client.call_uuid).pushed_s == pytest.approx(0.4)
    with caplog.at_level(logging.WARNING, logger="audiosocket_bridge"):
        run(scenario())
    errors = [r.getMessage() for r in caplog.records if "error message" in r.getMessage()]
    assert len(errors) == 1 and "0x04 (memory)" in errors[0], errors


def test_ulaw_labelled_as_slin_is_warned_about(tmp_path, caplog):
    """Dial(AudioSocket/host:port/uuid) without /c(slin16): 160-byte G.711 payloads under 0x10."""
    async def scenario():
        async with bridge_under_test(tmp_path) as bridge:
            client = await caller(bridge).connect()
            await client.send_ulaw(bytes(8000 * 2), realtime=False)
            await client.finish("hangup")
            assert await bridge.live.wait_ended(client.call_uuid, 5)
    with caplog.at_level(logging.WARNING, logger="audiosocket_bridge"):
        run(scenario())
    assert sum("look like G.711" in r.getMessage() for r in caplog.records) == 1
