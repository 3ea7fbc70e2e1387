"""Who may read or change a call (audiosocket_bridge/access.py and its listeners), on real
sockets: FastAGI and AudioSocket allow-lists (peers 127.0.0.1 and 127.0.0.2 of the loopback
network), the FastAGI secret, a register that would take over a live call, a UUID reused after its
call ended; plus the pure parts: allow-lists, escaped log lines, secrets out of reprs."""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone

import pytest

from audiosocket_bridge.access import AllowList, Gate, parse_networks, secret_matches
from audiosocket_bridge.audiosocket.settings import SessionSettings
from audiosocket_bridge.bridge import Bridge
from audiosocket_bridge.config import resolve
from audiosocket_bridge.logsafe import SafeFormatter
from audiosocket_bridge.outputs.presence import PresenceTiming, reuse_refusal
from audiosocket_bridge.outputs.storage import StoredCall
from audiosocket_bridge.registrations import CallOptions, MAX_PROMPT_CHARS
from tests.support.bridges import ANY_LOOPBACK_PORT, caller, run
from tests.support.builders import UUID_A, call_info, event
from tests.support.fake_agi_client import AgiCall, run_agi
from tests.support.fake_engine import FakeEngine
from tests.support.scrape import http_get, samples, value

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


# ---------------------------------------------------------------- pure

def test_allow_lists():
    allow = AllowList(parse_networks(["10.0.0.0/24", "192.0.2.7", "loopback"]))
    assert allow.allows("10.0.0.9") and allow.allows("192.0.2.7") and allow.allows("127.0.0.1")
    assert allow.allows("::ffff:10.0.0.3") and allow.allows("::1")
    assert not allow.allows("10.0.1.1") and not allow.allows("192.0.2.8") and not allow.allows(None)
    assert AllowList(parse_networks(["any"])).allows("203.0.113.5")
    with pytest.raises(ValueError, match="not an address or CIDR in an allow-list: 'pbx.lan'"):
        parse_networks(["pbx.lan"])


def test_default_allow_list_is_loopback_and_the_ami_hosts():
    allow = AllowList.default(["127.0.0.9", "no-such-host.invalid"])
    assert allow.allows("127.0.0.2") and allow.allows("::1")
    assert not allow.allows("192.0.2.1")


def test_a_refused_peer_is_logged_once_and_counted(caplog):
    gate = Gate("FastAGI", AllowList(parse_networks(["loopback"])))
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert not gate.admits("192.0.2.1")
    assert gate.refused["not-allowed"] == 3
    assert sum("192.0.2.1" in r.getMessage() for r in caplog.records) == 1


def test_secret_comparison():
    assert secret_matches("", None) and secret_matches("s3", "s3")
    assert not secret_matches("s3", None) and not secret_matches("s3", "s4")


def test_a_forged_line_cannot_enter_the_log():
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "bad language %s",
                               ("xx\n2026-12-07 INFO forged: admin logged in",), None)
    line = SafeFormatter("%(levelname)s %(message)s").format(record)
    assert "\n" not in line and "xx\\n2026-12-07 INFO forged" in line


def test_no_secret_in_the_configs_repr():
    config = resolve({"storage": "postgresql://bridge:pg-s3cret@db/calls?sslpassword=x",
                      "ami_secret": "ami-s3cret", "webhook_url": "https://h/x?token=wh-s3cret"},
                     {"AUDIOSOCKET_AGI_SECRET": "agi-s3cret"})
    shown = repr(config)
    for secret in ("pg-s3cret", "ami-s3cret", "wh-s3cret", "agi-s3cret", "sslpassword"):
        assert secret not in shown, shown
    assert "postgresql://***@db/calls" in shown


def test_call_options_bound_the_prompt_and_hide_it_from_logs():
    options = CallOptions.from_fields({"prompt": "Acme Widgets, Jane Doe", "redact": "pii",
                                       "retention": "30"})
    assert (options.redact, options.retention_days) == ("pii", 30.0)
    assert "Jane" not in repr(options) and "<22 chars>" in repr(options)
    with pytest.raises(ValueError, match=f"prompt is {MAX_PROMPT_CHARS + 1} characters long"):
        CallOptions.from_fields({"prompt": "x" * (MAX_PROMPT_CHARS + 1)})
    with pytest.raises(ValueError, match="unknown redaction policy"):
        CallOptions.from_fields({"redact": "none"})
    with pytest.raises(ValueError, match="retention must be a number of days above 0"):
        CallOptions.from_fields({"retention": "0"})


def _stored(ended_at):
    return StoredCall(UUID_A, "PJSIP/a-1", NOW - timedelta(hours=1), ended_at, "hangup", "en")


def test_a_stored_call_is_continued_only_shortly_after_it_ended():
    timing = PresenceTiming(continue_within_s=300)
    assert reuse_refusal(None, NOW, timing) is None
    assert reuse_refusal(_stored(None), NOW, timing) is None  # live (or its bridge just died)
    assert reuse_refusal(_stored(NOW - timedelta(seconds=60)), NOW, timing) is None  # an IVR loop
    assert "ended and was stored" in reuse_refusal(_stored(NOW - timedelta(seconds=301)), NOW, timing)


# ---------------------------------------------------------------- on sockets

def _bridge(tmp_path, **kwargs) -> Bridge:
    return Bridge(FakeEngine(), storage_url=f"sqlite:///{tmp_path}/calls.db",
                  listen=ANY_LOOPBACK_PORT, agi_listen=ANY_LOOPBACK_PORT, **kwargs)


async def _agi(bridge: Bridge, query: str, **kwargs) -> AgiCall:
    """What the request did to the channel (nothing, when the bridge closed on it)."""
    port = bridge.agi_server.port
    try:
        return await run_agi("127.0.0.1", port, f"agi://127.0.0.1:{port}/{query}", **kwargs)
    except ConnectionError:
        return AgiCall()


async def _finished_call(bridge: Bridge, text: str) -> None:
    call = call_info(UUID_A)
    await bridge.sinks.call_started(call)
    await bridge.sinks.transcript(call, event("final", 0, text))
    call.ended_at, call.end_reason = datetime.now(timezone.utc), "hangup"
    await bridge.sinks.call_ended(call)


def test_fastagi_answers_nothing_to_a_peer_off_its_allow_list(tmp_path):
    async def scenario():
        async with _bridge(tmp_path, agi_allow=AllowList(parse_networks(["127.0.0.2"]))) as bridge:
            await _finished_call(bridge, "my account is closed")
            stranger = await _agi(bridge, f"transcript?uuid={UUID_A}")
            allowed = await _agi(bridge, f"transcript?uuid={UUID_A}", local_host="127.0.0.2")
            return stranger, allowed, bridge.gates[1].refused["not-allowed"]

    stranger, allowed, refused = run(scenario())
    assert stranger.commands == [] and "TRANSCRIPT" not in stranger.variables
    assert allowed.variables["TRANSCRIPT"] == "my account is closed"
    assert refused == 1


def test_fastagi_with_a_secret_answers_only_requests_that_carry_it(tmp_path):
    async def scenario():
        async with _bridge(tmp_path, agi_secret="agi-s3cret") as bridge:
            await _finished_call(bridge, "hello")
            without = await _agi(bridge, f"transcript?uuid={UUID_A}")
            wrong = await _agi(bridge, f"transcript?uuid={UUID_A}&secret=guess")
            right = await _agi(bridge, f"transcript?uuid={UUID_A}", args=("secret=agi-s3cret",))
            in_a_global = await _agi(bridge, f"transcript?uuid={UUID_A}",
                                     preset={"AUDIOSOCKET_AGI_SECRET": "agi-s3cret"})
            return without, wrong, right, in_a_global

    without, wrong, right, in_a_global = run(scenario())
    assert "TRANSCRIPT" not in without.variables and "TRANSCRIPT" not in wrong.variables
    assert without.commands == ['GET VARIABLE "AUDIOSOCKET_AGI_SECRET"'] and wrong.commands == []
    assert right.variables["TRANSCRIPT"] == "hello" == in_a_global.variables["TRANSCRIPT"]


def test_a_foreign_register_cannot_take_over_a_registered_call(tmp_path):
    async def scenario():
        async with _bridge(tmp_path) as bridge:
            own = await _agi(bridge, f"register?uuid={UUID_A}&language=en",
                             channel="PJSIP/alice-00000001")
            foreign = await _agi(bridge, f"register?uuid={UUID_A}&mode=ivr&language=de",
                                 channel="PJSIP/mallory-00000009")
            again = await _agi(bridge, f"register?uuid={UUID_A}&partials=0",
                               channel="PJSIP/alice-00000001")
            return own, foreign, again, bridge.registrations.get(UUID_A)

    own, foreign, again, registration = run(scenario())
    assert own.variables["AUDIOSOCKET_REGISTER"] == "OK"
    assert foreign.variables["AUDIOSOCKET_REGISTER"] == "ERROR"
    assert again.variables["AUDIOSOCKET_REGISTER"] == "OK"  # its own channel may change it
    assert registration.channel == "PJSIP/alice-00000001"
    assert (registration.options.mode, registration.options.language) == ("transcribe", "en")


def test_audiosocket_refuses_a_peer_off_its_allow_list(tmp_path):
    async def scenario():
        async with _bridge(tmp_path, allow=AllowList(parse_networks(["127.0.0.2"]))) as bridge:
            client = await caller(bridge).connect()
            await client.send_silence(0.2)
            assert await client.wait_server_end(5)
            await asyncio.sleep(0.1)
            return bridge.storage.get_call(client.call_uuid), bridge.server.stats.connections_refused

    stored, refused = run(scenario())
    assert stored is None and refused == 1


def test_a_uuid_reused_after_its_call_ended_does_not_touch_the_stored_call(tmp_path):
    async def scenario():
        async with _bridge(tmp_path, presence=PresenceTiming(continue_within_s=0.0)) as bridge:
            first = await caller(bridge).connect()
            await first.send_silence(1.0)
            await first.finish("hangup")
            assert await bridge.live.wait_ended(first.call_uuid, 10)
            before = (bridge.storage.get_call(first.call_uuid),
                      bridge.storage.get_segments(first.call_uuid))
            await asyncio.sleep(0.05)
            replay = await caller(bridge, first.call_uuid).connect()
            await replay.send_silence(1.0)
            assert await replay.wait_server_end(5) and replay.server_hangup
            await asyncio.sleep(0.2)
            after = (bridge.storage.get_call(first.call_uuid),
                     bridge.storage.get_segments(first.call_uuid))
            return before, after

    before, after = run(scenario())
    assert before[0].ended_at is not None and before == after


def test_a_connection_without_uuid_is_closed_after_the_handshake_deadline_and_holds_no_slot(tmp_path):
    async def scenario():
        async with _bridge(tmp_path, max_calls=1,
                           session=SessionSettings(handshake_timeout_s=0.5)) as bridge:
            silent = [await caller(bridge).connect(send_uuid=False) for _ in range(3)]
            real = await caller(bridge).connect()  # no call slot is held by the silent ones
            await real.send_silence(0.3)
            assert not real.ended
            for client in silent:
                assert await client.wait_server_end(3)
            await real.finish("hangup")
            assert await bridge.live.wait_ended(real.call_uuid, 5)
            return bridge.server.stats.handshake_timeouts, bridge.storage.get_call(real.call_uuid)

    timeouts, stored = run(scenario())
    assert timeouts == 3 and stored.end_reason == "hangup"


def test_a_byte_now_and_then_does_not_keep_a_connection_open(tmp_path):
    """A header announcing 32000 bytes, then one byte at a time: no whole message, so the idle
    timeout (on whole messages) closes it."""
    async def scenario():
        async with _bridge(tmp_path, session=SessionSettings(idle_timeout_s=1.0)) as bridge:
            client = await caller(bridge).connect()
            await client.send_bytes(bytes([0x10, 0x7D, 0x00]))
            loop = asyncio.get_running_loop()
            started = loop.time()
            while not client.ended and loop.time() - started < 5:
                await client.send_bytes(b"\x00")
                await asyncio.sleep(0.2)
            return client.ended, loop.time() - started

    ended, seconds = run(scenario())
    assert ended and seconds < 3


def test_fastagi_refuses_an_endless_or_oversized_request(tmp_path):
    async def scenario():
        async with _bridge(tmp_path) as bridge:
            port, results = bridge.agi_server.port, []
            for lines in (["agi_network: yes"] + [f"agi_x{i}: y" for i in range(300)],
                          ["agi_network: yes", "agi_x: " + "y" * 20000]):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                try:
                    writer.write(("\n".join(lines) + "\n").encode())
                    await writer.drain()
                    results.append(await asyncio.wait_for(reader.read(), 5))
                except ConnectionError:
                    results.append(b"")
                finally:
                    writer.close()
            return results, dict(bridge.gates[1].refused)

    results, refused = run(scenario())
    assert results == [b"", b""]  # closed at once, nothing answered
    assert refused == {"request of more than 256 lines": 1, "line of more than 8192 bytes": 1}


def test_dtmf_records_of_a_call_are_bounded(tmp_path):
    async def scenario():
        async with _bridge(tmp_path, session=SessionSettings(redact="off")) as bridge:
            client = await caller(bridge).connect()
            for _ in range(2000):
                await client.send_dtmf("5")
            await client.send_silence(0.2)
            await client.finish("hangup")
            assert await bridge.live.wait_ended(client.call_uuid, 10)
            return bridge.storage.get_call(client.call_uuid)

    stored = run(scenario())
    assert len(stored.dtmf) == 512 and stored.end_reason == "hangup"


def test_transcript_wait_is_honoured_up_to_its_maximum(tmp_path):
    """wait=20 on a call that ends after 14 s: the answer is OK with its last final (the script's
    own timeout used to cut it at 13 s)."""
    async def scenario():
        async with _bridge(tmp_path) as bridge:
            call = call_info(UUID_A)
            await bridge.sinks.call_started(call)

            async def end_later():
                await asyncio.sleep(14)
                await bridge.sinks.transcript(call, event("final", 0, "finally done"))
                call.ended_at, call.end_reason = datetime.now(timezone.utc), "hangup"
                await bridge.sinks.call_ended(call)

            ending = asyncio.create_task(end_later())
            result = await _agi(bridge, f"transcript?uuid={UUID_A}&wait=20", timeout_s=30)
            await ending
            return result

    result = asyncio.run(scenario())
    assert (result.variables["TRANSCRIPT_STATUS"], result.variables["TRANSCRIPT"]) == ("OK", "finally done")


def test_metrics_and_health_show_no_transcript_text_and_count_refusals(tmp_path):
    async def scenario():
        async with Bridge(FakeEngine(), storage_url=f"sqlite:///{tmp_path}/calls.db",
                          listen=ANY_LOOPBACK_PORT, agi_listen=ANY_LOOPBACK_PORT,
                          metrics_listen=ANY_LOOPBACK_PORT,
                          agi_allow=AllowList(parse_networks(["127.0.0.2"]))) as bridge:
            await _finished_call(bridge, "zebra crossing at midnight")
            await _agi(bridge, f"transcript?uuid={UUID_A}")
            address = bridge.metrics_server.address
            return (await http_get(address, "/metrics"))[1], (await http_get(address, "/healthz"))[1]

    metrics, health = run(scenario())
    for body in (metrics, health):
        assert "zebra" not in body and UUID_A not in body
    assert value(samples(metrics), "audiosocket_access_refused_total", listener="FastAGI",
                 reason="not-allowed") == 1
