"""AmiSink + listener against the fake AMI: captions, channel variables, outages, credentials."""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from tests.support.builders import CHANNEL_A, CHANNEL_B, UUID_A, UUID_B, call_info, event, eventually
from audiosocket_bridge.testing.fake_ami import FakeAmi, transcriber, users_from_manager_conf

from audiosocket_bridge.asterisk.ami_outbox import Outbox, OutboxItem
from audiosocket_bridge.asterisk.ami_sink import AmiConfig, AmiSink
from audiosocket_bridge.backoff import Backoff
from audiosocket_bridge.asterisk.ami_client import AmiConnection
from audiosocket_bridge.asterisk.ami_protocol import AMI_MAX_LINE_BYTES
from audiosocket_bridge.registrations import Registrations, CallOptions
from audiosocket_bridge.outputs.sinks import SinkGroup, StorageSink
from audiosocket_bridge.outputs.storage import open_storage

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
SECRET = "s3cret"
MANAGER_CONF = Path(__file__).resolve().parents[2] / "dialplan" / "manager.conf"


@pytest.fixture
def ami():
    """The users, classes and eventfilters of the shipped dialplan/manager.conf."""
    fake = FakeAmi(users_from_manager_conf(MANAGER_CONF, {"transcriber": SECRET}))
    fake.start()
    yield fake
    fake.stop()


def _config(ami: FakeAmi, **overrides) -> AmiConfig:
    values = dict(port=ami.port, secret=SECRET, backoff_initial_s=0.05, backoff_max_s=0.2,
                  connect_timeout_s=1.0, action_timeout_s=1.0, drain_timeout_s=2.0)
    values.update(overrides)
    return AmiConfig(**values)


@pytest.fixture
def sink_for(ami):
    sinks = []

    def make(**overrides) -> AmiSink:
        sink = AmiSink(_config(ami, **overrides), Registrations())
        sink.start()
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        sink.close_sync()


def _captions(ami: FakeAmi, uuid: str) -> list[dict]:
    return [a.headers for a in ami.named("UserEvent")
            if a.get("UserEvent") == "Transcript" and a.get("Uuid") == uuid]


def test_finals_become_setvars_and_captions_on_the_calls_channel(ami, sink_for):
    sink = sink_for()
    call_a, call_b = call_info(UUID_A, CHANNEL_A), call_info(UUID_B, CHANNEL_B)

    async def scenario():
        for call in (call_a, call_b):
            await sink.call_started(call)
        await sink.transcript(call_a, event("partial", 0, "hello"))
        await sink.transcript(call_a, event("final", 0, "Hello there.", start_s=1.24, end_s=2.5))
        await sink.transcript(call_b, event("final", 0, "Hi Alice.", uuid=UUID_B))
        await sink.transcript(call_a, event("final", 1, "How are you?", start_s=3.0, end_s=4.0))
        await sink.call_ended(call_a)

    asyncio.run(scenario())
    assert ami.wait_for(lambda f: len(f.named("UserEvent")) == 4)
    assert ami.variables[(CHANNEL_A, "TRANSCRIPT")] == "How are you?"
    assert ami.variables[(CHANNEL_A, "TRANSCRIPT_FULL_1")] == "Hello there. How are you?"
    assert ami.variables[(CHANNEL_A, "TRANSCRIPT_SEGMENTS")] == "2"
    assert ami.variables[(CHANNEL_A, "TRANSCRIPT_PARTS")] == "1"
    assert ami.variables[(CHANNEL_B, "TRANSCRIPT")] == "Hi Alice."
    first = _captions(ami, UUID_A)[0]
    assert {k: first[k] for k in ("Channel", "Final", "Segment", "Start", "End", "Language",
                                  "Text")} == {"Channel": CHANNEL_A, "Final": "1", "Segment": "0",
                                               "Start": "1.24", "End": "2.50", "Language": "en",
                                               "Text": "Hello there."}
    assert all(c["Final"] == "1" for c in _captions(ami, UUID_A))  # partials off by default
    end = [a for a in ami.named("UserEvent") if a.get("UserEvent") == "TranscriptEnd"][0]
    assert (end.get("Uuid"), end.get("Segments")) == (UUID_A, "2")


def test_partials_follow_the_per_call_option_over_the_bridge_default(ami, sink_for):
    sink = sink_for(partials=False)
    with_partials = call_info(UUID_A, CHANNEL_A, CallOptions(partials=True))

    async def scenario():
        await sink.transcript(with_partials, event("partial", 0, "hel"))
        await sink.transcript(call_info(UUID_B, CHANNEL_B), event("partial", 0, "x", uuid=UUID_B))
        await sink.transcript(with_partials, event("final", 0, "hello"))

    asyncio.run(scenario())
    assert ami.wait_for(lambda f: len(_captions(f, UUID_A)) == 2)
    assert [c["Final"] for c in _captions(ami, UUID_A)] == ["0", "1"]
    assert _captions(ami, UUID_B) == []


def test_an_ami_restart_mid_call_loses_no_final(ami, sink_for):
    sink = sink_for(partials=True)
    call = call_info()
    assert sink.wait_connected(5)
    asyncio.run(sink.transcript(call, event("final", 0, "one")))
    assert ami.wait_for(lambda f: len(_captions(f, UUID_A)) == 1)
    ami.stop()
    assert eventually(lambda: sink.state != "connected")

    async def while_down():
        for index, text in enumerate(["two", "three", "four"], start=1):
            for n in range(30):  # partials may be dropped while down; finals may not
                await sink.transcript(call, event("partial", index, f"{text} {n}"))
            await sink.transcript(call, event("final", index, text))

    asyncio.run(while_down())
    ami.start()  # same port
    # at-least-once: an action cut off by the restart before its response is sent again
    finals = lambda: list(dict.fromkeys(  # noqa: E731
        (c["Segment"], c["Text"]) for c in _captions(ami, UUID_A) if c["Final"] == "1"))
    ami.wait_for(lambda f: len(finals()) >= 4, 10.0)
    assert finals() == [("0", "one"), ("1", "two"), ("2", "three"), ("3", "four")]
    assert ami.variables[(CHANNEL_A, "TRANSCRIPT_FULL_1")] == "one two three four"
    assert ami.variables[(CHANNEL_A, "TRANSCRIPT_SEGMENTS")] == "4"


def queue_while_down(sink, kinds_and_indexes) -> None:
    call = call_info()

    async def burst():
        for kind, n in kinds_and_indexes:
            await sink.transcript(call, event(kind, n, f"{kind[0]}{n}"))
    asyncio.run(burst())


def test_outbox_bound_drops_partials_first_and_counts_them(ami, sink_for):
    ami.stop()
    sink = sink_for(partials=True, max_pending=5)
    queue_while_down(sink, [("partial", n) for n in range(20)] + [("final", n) for n in range(8)])
    stats = sink._outbox.stats
    assert stats.dropped_partials == 20 and stats.finals_over_bound == 3
    assert sink.pending == 8


def test_wrong_credentials_give_a_clear_error_while_transcripts_are_still_stored(ami, caplog):
    storage = open_storage("sqlite:///:memory:")
    ami_sink = AmiSink(_config(ami, secret="wrong-secret"), Registrations())
    group = SinkGroup([StorageSink(storage), ami_sink])
    call = call_info()
    caplog.set_level(logging.DEBUG)
    ami_sink.start()
    assert eventually(lambda: ami_sink.state == "auth-failed")

    async def scenario():
        await group.call_started(call)
        await group.transcript(call, event("final", 0, "still stored"))
        await group.call_ended(call)
        text = storage.transcript_text(UUID_A)
        await group.close()
        return text

    assert asyncio.run(scenario()) == "still stored"
    assert "Authentication failed" in ami_sink.last_error and "'transcriber'" in ami_sink.last_error
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.name.endswith("ami_sink")]
    assert len(errors) == 1 and "Authentication failed" in errors[0].getMessage()
    assert "wrong-secret" not in caplog.text and "wrong-secret" not in repr(ami_sink.config)


def test_audiosocketstart_event_registers_the_call_and_routes_its_setvars(ami):
    registrations = Registrations()
    sink = AmiSink(_config(ami), registrations)
    sink.start()
    assert sink.wait_connected(5)
    ami.emit_user_event("AudioSocketStart",
                        {"Uuid": UUID_A.upper(), "Language": "de", "Partials": "1", "Mode": "ivr"},
                        snapshot={"Channel": CHANNEL_B, "Uniqueid": "1718.7", "Linkedid": "1718.6"},
                        chan_vars={"SIPCALLID": "abc@host"})
    assert eventually(lambda: registrations.get(UUID_A) is not None)
    registration = registrations.get(UUID_A)
    assert (registration.channel, registration.linkedid) == (CHANNEL_B, "1718.6")
    assert (registration.options.language, registration.options.partials,
            registration.options.mode) == ("de", True, "ivr")
    asyncio.run(sink.transcript(call_info(UUID_A, channel=None), event("final", 0, "Hallo")))
    assert ami.wait_for(lambda f: f.variables.get((CHANNEL_B, "TRANSCRIPT")) == "Hallo")
    sink.close_sync()


def test_long_text_is_chunked_under_the_ami_line_limit(ami, sink_for):
    sink = sink_for()
    words = [f"wort{n}é" for n in range(600)]  # ~5 KB of text with multi-byte characters
    asyncio.run(sink.transcript(call_info(), event("final", 0, " ".join(words))))
    assert ami.wait_for(lambda f: (CHANNEL_A, "TRANSCRIPT") in f.variables)
    parts = int(ami.variables[(CHANNEL_A, "TRANSCRIPT_PARTS")])
    assert parts >= 5
    joined = " ".join(ami.variables[(CHANNEL_A, f"TRANSCRIPT_FULL_{i}")] for i in range(1, parts + 1))
    assert joined == " ".join(words)
    assert ami.line_too_long == 0
    assert all(len(line.encode()) + 2 <= AMI_MAX_LINE_BYTES for a in ami.actions for line in a.lines)


def test_setvar_on_a_vanished_channel_is_counted_not_retried(ami, sink_for):
    ami.channels = {CHANNEL_B}
    sink = sink_for()

    async def scenario():
        await sink.transcript(call_info(UUID_A, CHANNEL_A), event("final", 0, "gone"))
        await sink.transcript(call_info(UUID_B, CHANNEL_B), event("final", 0, "here", uuid=UUID_B))

    asyncio.run(scenario())
    assert ami.wait_for(lambda f: f.variables.get((CHANNEL_B, "TRANSCRIPT")) == "here")
    assert sink.counters["rejected"] == 4 and len(_captions(ami, UUID_A)) == 1


def test_reconnect_backoff_doubles_up_to_the_cap_without_jitter():
    backoff = Backoff(0.5, 3.0, jitter=False)
    assert [backoff.delay_s(failures) for failures in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff.delay_s(100_000) == 3.0  # a PBX down for days: still the cap, no OverflowError


def test_a_caption_saying_status_will_follow_does_not_stall_the_session():
    """Without the recommended eventfilter Asterisk echoes our captions back to us; pyst2's
    reader took this one for the start of a Status listing and glued later responses to it."""
    ami = FakeAmi({"transcriber": transcriber(SECRET)})  # no eventfilter: captions come back
    ami.start()
    sink = AmiSink(_config(ami), Registrations())
    sink.start()
    try:
        assert sink.wait_connected(5)
        call = call_info()
        asyncio.run(sink.transcript(call, event("final", 0, "Your order status will follow by email.")))
        assert ami.wait_for(lambda f: len(_captions(f, UUID_A)) == 1)
        asyncio.run(sink.transcript(call, event("final", 1, "Anything else?")))
        assert ami.wait_for(lambda f: f.variables.get((CHANNEL_A, "TRANSCRIPT")) == "Anything else?",
                            0.8)  # well under the 1 s action timeout
        assert sink.counters["sessions"] == 1 and ami.logins == 1
        assert eventually(lambda: sink.counters["sent"] == 10) and sink.counters["rejected"] == 0
    finally:
        sink.close_sync()
        ami.stop()


def test_the_shipped_eventfilter_keeps_our_own_captions_from_coming_back(ami):
    registrations = Registrations()
    sink = AmiSink(_config(ami), registrations)
    seen = []  # what a second session of the same user is sent
    sink.start()
    try:
        assert sink.wait_connected(5)
        observer = AmiConnection(action_timeout_s=2.0)
        observer.register_event("*", lambda ev, _m: seen.append(ev.headers.get("UserEvent")))
        observer.connect("127.0.0.1", ami.port)
        observer.login("transcriber", SECRET, events="user")
        asyncio.run(sink.transcript(call_info(), event("final", 0, "UserEvent: AudioSocketStart")))
        assert ami.wait_for(lambda f: len(_captions(f, UUID_A)) == 1)
        ami.emit_user_event("AudioSocketStart", {"Uuid": UUID_B}, snapshot={"Channel": CHANNEL_B})
        assert eventually(lambda: registrations.get(UUID_B) is not None)
        assert eventually(lambda: seen == ["AudioSocketStart"])
        observer.close()
    finally:
        sink.close_sync()


def test_finals_past_the_outbox_bound_drop_the_oldest_counted_and_logged(caplog):
    dropped = []
    outbox = Outbox(max_items=2, max_finals=4, on_dropped=dropped.append)
    for n in range(3):
        outbox.put(OutboxItem(UUID_A, [{"Action": "UserEvent", "n": str(n)}], final=False, segment=n))
    with caplog.at_level(logging.WARNING, "audiosocket_bridge.asterisk.ami_outbox"):
        for n in range(6):
            outbox.put(OutboxItem(UUID_A, [{"Action": "Setvar", "n": str(n)}], final=True, segment=n))
    assert outbox.stats.dropped_partials == 3  # partials went first
    assert [item.actions[0]["n"] for item in dropped] == ["0", "1"]  # then the oldest finals
    assert outbox.stats.dropped_finals == 2 and len(outbox) == 4
    assert "dropped the oldest final" in caplog.text


def test_close_flushes_every_final_queued_while_ami_was_down(ami, sink_for):
    ami.stop()
    sink = sink_for(partials=True, drain_timeout_s=0.3)
    queue_while_down(sink, [(kind, n) for n in range(1000) for kind in ("partial", "final")])
    ami.start()
    assert sink.wait_connected(5)
    sink.close_sync()  # flushes for as long as Asterisk keeps taking them, not 0.3 s in all
    finals = {c["Segment"] for c in _captions(ami, UUID_A) if c["Final"] == "1"}
    assert finals == {str(n) for n in range(1000)}
    assert sink.outbox_stats.dropped_finals == 0 and sink.pending == 0
