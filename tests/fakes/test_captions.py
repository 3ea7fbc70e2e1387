"""The caption stream: its pure core (subscribers' bounded queues, the ring of finals, resuming,
phrase alerts, who may read) and the stream itself over a real WebSocket from a bridge with the
fake engine (token refusals, calls streamed, a reconnect that loses no final, SSE)."""
import asyncio
import re
from datetime import datetime, timezone

import pytest

from audiosocket_bridge.outputs.alerts import call_rules, matches, parse_rule, parse_rules
from audiosocket_bridge.outputs.captions import CaptionHub, CaptionLimits, Replayed, parse_since
from audiosocket_bridge.outputs.http_auth import HttpAccess
from audiosocket_bridge.outputs.sinks import CallInfo
from audiosocket_bridge.registrations import CallOptions, Registration
from tests.support.bridges import bridge_under_test, caller, run
from tests.support.caption_stream import TOKEN, StreamClient, assert_valid, finals_of, http_status
from tests.support.fake_engine import FakeEngine
from whisper.streaming.types import TranscriptEvent

UUID = "5e4a0b4e-3f8e-4f5e-9d56-0a6c3c1d2e01"


def call_info(uuid=UUID, **options) -> CallInfo:
    return CallInfo(uuid, "127.0.0.1:1", datetime.now(timezone.utc), 8000,
                    Registration(uuid, "PJSIP/a-1", options=CallOptions(**options)))


def event(kind, index, text="hello", uuid=UUID) -> TranscriptEvent:
    return TranscriptEvent(uuid, kind, index, text, index * 1.0, index + 0.9, "en", -0.1, 0.01)


# ------------------------------------------------------------------ pure core

def test_a_slow_subscriber_loses_partials_first_then_is_closed_with_a_reason():
    async def scenario():
        hub = CaptionHub(CaptionLimits(queue_messages=4, partials_until=0.5))
        slow, other_call = hub.subscribe(), hub.subscribe("b0b0b0b0-0000-4000-8000-000000000000")
        call = call_info()
        await hub.call_started(call)  # 1 queued
        await hub.transcript(call, event("partial", 0))  # 2
        await hub.transcript(call, event("partial", 0))  # dropped: half full
        await hub.transcript(call, event("final", 0))  # 3
        await hub.transcript(call, event("final", 1))  # 4: full
        assert slow.partials_dropped == 1 and slow.closed_reason is None
        await hub.transcript(call, event("final", 2))  # no room: closed, not silently lost
        assert slow.closed_reason.startswith("too slow") and slow not in hub.subscribers
        assert await slow.next() is None
        assert hub.slow_closed == 1 and other_call in hub.subscribers  # not its call: nothing queued
    asyncio.run(scenario())


def test_the_ring_of_finals_answers_since_until_it_no_longer_reaches_back():
    async def scenario():
        hub = CaptionHub(CaptionLimits(ring_finals=3), segment_offset=lambda uuid: 10)
        call = call_info()
        await hub.call_started(call)
        for index in range(5):
            await hub.transcript(call, event("final", index))
        assert [m["segment"] for m in hub.recent_finals(UUID, 12)] == [12, 13, 14]
        assert [m["segment"] for m in hub.recent_finals(UUID, 14)] == [14]
        assert hub.recent_finals(UUID, 11) is None  # dropped from the ring: read storage
        await hub.call_ended(call)
        assert hub.recent_finals(UUID, 14) is None and UUID not in hub.calls
    asyncio.run(scenario())


def test_messages_carry_the_stored_segment_number_words_and_labels():
    async def scenario():
        hub = CaptionHub(segment_offset=lambda uuid: 7)
        listener = hub.subscribe(UUID)
        call = call_info(speaker="agent", conversation="1700000000.5")
        await hub.call_started(call)
        await hub.transcript(call, event("final", 0, " Hi there. "))
        await hub.call_ended(call)
        started, final, ended = [await listener.next() for _ in range(3)]
        assert (started["speaker"], started["conversation"]) == ("agent", "1700000000.5")
        assert (final["segment"], final["text"], final["words"]) == (7, "Hi there.", [])
        assert ended["type"] == "call_ended"
    asyncio.run(scenario())


def test_since_parsing_and_replayed_finals_skipped():
    assert parse_since("4", UUID) == {UUID: 4}
    assert parse_since(f"{UUID.upper()}:4,b:2", None) == {UUID: 4, "b": 2}
    with pytest.raises(ValueError, match="since"):
        parse_since("4", None)
    with pytest.raises(ValueError, match="since"):
        parse_since(f"{UUID}:x", None)
    replayed = Replayed.of([{"type": "call_started", "call": UUID},
                            *({"type": "final", "call": UUID, "segment": n} for n in (2, 3))])
    assert replayed.skip({"type": "final", "call": UUID, "segment": 3})
    assert not replayed.skip({"type": "final", "call": UUID, "segment": 4})
    assert not replayed.skip({"type": "partial", "call": UUID, "segment": 2})
    started = {"type": "call_started", "call": UUID}
    assert replayed.skip(started) and not replayed.skip(started)  # a later session's start passes


def test_phrases_match_whole_words_in_any_case_across_punctuation():
    rules = parse_rules(["cancel my contract", "re:\\brefund(ed|s)?\\b"])
    assert matches(rules, "I want to cancel, my CONTRACT now.") == [("cancel my contract", "cancel, my CONTRACT")]
    assert matches(rules, "It was refunded.") == [("re:\\brefund(ed|s)?\\b", "refunded")]
    assert matches(rules, "cancel my contractor") == [] and matches(rules, "refundable") == []
    assert [r.name for r in call_rules("password | pound key")] == ["password", "pound key"]
    with pytest.raises(ValueError, match="alert pattern 're:\\(': "):
        parse_rule("re:(")
    with pytest.raises(ValueError, match="alert phrase"):
        parse_rule("!!!")


def test_transcripts_over_http_are_refused_unless_configured():
    nobody = HttpAccess()
    assert not nobody.enabled and not nobody.allows({}, {})
    tokened = HttpAccess(token=TOKEN)
    assert tokened.allows({"Authorization": f"Bearer {TOKEN}"}, {})
    assert tokened.allows({}, {"token": TOKEN})
    assert not tokened.allows({"Authorization": f"Bearer {TOKEN}x"}, {})
    assert not tokened.allows({"Authorization": f"Basic {TOKEN}"}, {})
    assert TOKEN not in repr(tokened)
    assert HttpAccess(open_access=True).allows({}, {})
    with pytest.raises(ValueError, match="at least 16"):
        HttpAccess(token="short")


# ------------------------------------------------------------------ over the network

def _bridge(tmp_path, access=HttpAccess(token=TOKEN), **kw):
    return bridge_under_test(tmp_path, metrics=True, http_access=access, **kw)


def test_the_stream_refuses_a_client_without_the_token_and_metrics_stay_open(tmp_path):
    async def scenario():
        async with _bridge(tmp_path) as bridge:
            address = bridge.metrics_server.address
            for token in (None, "wrong-token-0123456789"):
                status, _ = await http_status(address, "/stream", token)
                assert status == 401
                status, _ = await http_status(address, "/api/search?q=x", token)
                assert status == 401
            with pytest.raises(Exception, match="401"):
                await StreamClient(address, token=None).open()
            assert (await http_status(address, "/healthz"))[0] == 200
            assert (await http_status(address, "/metrics"))[0] == 200
            assert (await http_status(address, "/"))[0] == 200  # the page itself holds no data
        async with _bridge(tmp_path, HttpAccess()) as closed:  # no token configured: deny all
            status, body = await http_status(closed.metrics_server.address, "/stream", TOKEN)
            assert status == 403 and "--http-token-file" in body
    run(scenario())


def test_a_call_streams_started_partials_finals_and_ended_in_order_then_bye(tmp_path):
    async def scenario():
        async with _bridge(tmp_path) as bridge:
            everyone = await StreamClient(bridge.metrics_server.address).open()
            client = await caller(bridge).connect()
            one = await StreamClient(bridge.metrics_server.address, call=client.call_uuid,
                                     header=False).open()  # the browser's way: ?token=
            await client.send_silence(2.0)
            await client.finish("hangup")
            assert await bridge.live.wait_ended(client.call_uuid, 5)
            for listener in (everyone, one):
                assert await listener.wait_for(lambda ms: any(m["type"] == "call_ended" for m in ms))
                kinds = [m["type"] for m in listener.messages]
                assert kinds == ["call_started", "partial", "final", "partial", "final", "call_ended"]
                assert finals_of(listener.messages, client.call_uuid) == [0, 1]
                assert listener.of("final")[1]["text"] == "segment 1"
                assert_valid(listener.messages)
            await one.close()
        assert await everyone.wait_for(lambda ms: ms[-1]["type"] == "bye")  # the bridge stopped
        assert everyone.messages[-1] == {"type": "bye", "reason": "shutdown"}
        assert everyone.close_code == 1001
        assert_valid(everyone.messages[-1:])
        await everyone.close()
    run(scenario())


def test_a_reconnecting_client_misses_no_final_from_the_ring_or_from_storage(tmp_path):
    async def scenario():
        async with _bridge(tmp_path) as bridge:
            bridge.captions.limits = CaptionLimits(ring_finals=2)
            address = bridge.metrics_server.address
            client = await caller(bridge).connect()
            listener = await StreamClient(address, call=client.call_uuid).open()
            await client.send_silence(2.0)
            assert await listener.wait_for(lambda ms: finals_of(ms, client.call_uuid) == [0, 1])
            await listener.close()  # away while 5 more finals are made: the ring keeps 2
            await client.send_silence(5.0)
            await asyncio.sleep(0.3)
            back = await StreamClient(address, call=client.call_uuid, since="2").open()
            await client.send_silence(1.0)
            assert await back.wait_for(lambda ms: 7 in finals_of(ms, client.call_uuid))
            assert finals_of(back.messages, client.call_uuid) == [2, 3, 4, 5, 6, 7]
            recent = await StreamClient(address, call=client.call_uuid, since="6").open()
            assert await recent.wait_for(lambda ms: 7 in finals_of(ms, client.call_uuid))
            assert finals_of(recent.messages, client.call_uuid) == [6, 7]  # from the ring
            await client.finish("hangup")
            assert await bridge.live.wait_ended(client.call_uuid, 5)
            after = await StreamClient(address, call=client.call_uuid, since="7").open()
            assert await after.wait_for(lambda ms: any(m["type"] == "call_ended" for m in ms))
            assert [m["type"] for m in after.messages] == ["call_started", "final", "call_ended"]
            assert_valid(back.messages + after.messages)
            for each in (back, recent, after):
                await each.close()
    run(scenario())


def test_server_sent_events_carry_the_same_messages(tmp_path):
    async def scenario():
        import aiohttp

        async with _bridge(tmp_path) as bridge:
            host, port = bridge.metrics_server.address
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://{host}:{port}/stream",
                                       headers={"Accept": "text/event-stream",
                                                "Authorization": f"Bearer {TOKEN}"}) as response:
                    assert response.headers["Content-Type"] == "text/event-stream"
                    client = await caller(bridge).connect()
                    await client.send_silence(1.0)
                    lines = []
                    while "event: final" not in lines:
                        lines.append((await asyncio.wait_for(response.content.readline(), 5))
                                     .decode().strip())
                    assert lines[0] == "event: call_started" and "event: partial" in lines
                    await client.finish("hangup")
    run(scenario())


def test_alerts_and_the_token_from_flags_environment_and_file(tmp_path):
    from audiosocket_bridge import cli
    from audiosocket_bridge.bridge import http_access

    def config(*argv, environ=None):
        return cli.load_config(cli.build_parser().parse_args(list(argv)), environ or {})

    assert config("--alert", "refund", "--alert", "re:x+").alert == ("refund", "re:x+")
    assert config(environ={"AUDIOSOCKET_ALERT": "cancel my contract\nre:a;b|c\n"}).alert == (
        "cancel my contract", "re:a;b|c")
    ini = tmp_path / "bridge.ini"
    ini.write_text("[bridge]\nalert =\n    refund\n    re:\\bcancel\n")
    assert cli.load_config(cli.build_parser().parse_args(["--config", str(ini)]), {}).alert == (
        "refund", "re:\\bcancel")
    with pytest.raises(ValueError, match="alert pattern 're:\\(x'"):
        config("--alert", "re:(x")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    access = http_access(config("--http-token-file", str(token_file)))
    assert access.token == TOKEN and not access.open_access and TOKEN not in repr(access)
    assert not http_access(config()).enabled and http_access(config("--http-no-auth")).open_access
    token_file.write_text("short\n")
    with pytest.raises(ValueError, match="at least 16 characters"):
        http_access(config("--http-token-file", str(token_file)))
    assert cli.main(["--alert", "re:(", "--storage", f"sqlite:///{tmp_path}/x.db"]) == 2


def test_the_stream_shows_card_numbers_redacted_in_partials_and_finals(tmp_path):
    """Redaction comes before every sink: the caption stream gets what storage gets."""
    said = ("My card number is 4539 1488", "0343 6467, thanks.")
    engine = FakeEngine(texts=said)

    async def scenario():
        async with _bridge(tmp_path, engine=engine) as bridge:
            listener = await StreamClient(bridge.metrics_server.address).open()
            client = await caller(bridge).connect()
            await client.send_silence(2.0)
            await client.finish("hangup")
            assert await bridge.live.wait_ended(client.call_uuid, 10)
            assert await listener.wait_for(lambda ms: any(m["type"] == "call_ended" for m in ms))
            await listener.close()
            return listener.messages, bridge.storage.get_segments(client.call_uuid)

    messages, segments = run(scenario())
    shown = [m["text"] for m in messages if m["type"] in ("partial", "final")]
    assert [m["text"] for m in messages if m["type"] == "final"] == [
        "My card number is [card]", "[card], thanks."]
    assert not any(re.search(r"\d{4}", text) for text in shown), shown
    assert [s.text for s in segments] == ["My card number is [card]", "[card], thanks."]
