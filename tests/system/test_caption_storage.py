"""What the caption page reads from storage, on SQLite and PostgreSQL: full-text search, the legs
of a conversation exported as one, phrase alerts stored and sent as AMI TranscriptAlert."""
import asyncio
import json
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from audiosocket_bridge import cli
from audiosocket_bridge.asterisk.ami_sink import AmiConfig
from audiosocket_bridge.outputs.alerts import parse_rules
from audiosocket_bridge.outputs.export import export_call, export_conversation
from audiosocket_bridge.outputs.http_auth import HttpAccess
from audiosocket_bridge.outputs.migrations import MIGRATIONS, SqliteDialect, migrate
from audiosocket_bridge.outputs.search import call_alerts, search
from audiosocket_bridge.outputs.sinks import CallInfo
from audiosocket_bridge.outputs.storage import open_storage
from audiosocket_bridge.registrations import CallOptions, Registration
from tests.support.bridges import bridge_under_test, caller, run
from tests.support.caption_stream import TOKEN, StreamClient, assert_valid
from audiosocket_bridge.testing.fake_ami import FakeAmi, transcriber
from whisper.streaming.types import TranscriptEvent

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pyst2's threads
AGENT, CUSTOMER = "0b9c6d8e-1111-4a2b-8c3d-000000000001", "0b9c6d8e-2222-4a2b-8c3d-000000000002"
T0 = datetime(2026, 12, 1, 9, 0, 0, tzinfo=timezone.utc)


def leg(uuid, speaker, started_at, conversation="1764579600.42") -> CallInfo:
    options = CallOptions(speaker=speaker, conversation=conversation)
    return CallInfo(uuid, "127.0.0.1:1", started_at, 8000, Registration(uuid, f"PJSIP/{speaker}-1",
                                                                         options=options))


def final(uuid, index, text, start_s, end_s) -> TranscriptEvent:
    return TranscriptEvent(uuid, "final", index, text, start_s, end_s, "en", -0.2, 0.01)


def store_conversation(storage) -> None:
    agent, customer = leg(AGENT, "agent", T0), leg(CUSTOMER, "customer", T0 + timedelta(seconds=2))
    for call in (agent, customer):
        storage.record_call_start(call)
    storage.record_final(agent, final(AGENT, 0, " Thank you for calling, how can I help?", 0.5, 2.4))
    storage.record_final(customer, final(CUSTOMER, 0, " I would like a refund please.", 1.0, 3.0))
    storage.record_final(agent, final(AGENT, 1, " Sure, let me cancel that order.", 5.5, 7.0))
    for call in (agent, customer):
        call.ended_at, call.end_reason = T0 + timedelta(seconds=9), "hangup"
        storage.record_call_end(call)


def test_search_finds_finals_by_their_words_newest_first(database_url):
    storage = open_storage(database_url)
    try:
        store_conversation(storage)
        (hit,) = search(storage, "refund")
        assert (hit.uuid, hit.speaker, hit.segment_index) == (CUSTOMER, "customer", 0)
        assert [h.uuid for h in search(storage, "PLEASE Refund")] == [CUSTOMER]
        assert [h.segment_index for h in search(storage, "cancel")] == [1]
        assert search(storage, "refund cancel") == []  # every word, in one final
        assert search(storage, 'refund" OR "cancel') == []  # user text is never query syntax
        assert search(storage, "refunds") == [] and search(storage, "  ") == []
    finally:
        storage.close()


def test_finals_stored_before_the_migration_are_searchable(tmp_path):
    path = tmp_path / "old.db"
    connection = sqlite3.connect(path, isolation_level=None)
    migrate(connection, SqliteDialect(), MIGRATIONS[:5])  # a database of the previous release
    connection.execute("INSERT INTO calls (uuid, started_at) VALUES (?, ?)", (AGENT, T0.isoformat()))
    connection.execute("INSERT INTO segments (uuid, segment_index, start_s, end_s, text) "
                       "VALUES (?, 0, 0.0, 1.0, 'an old refund')", (AGENT,))
    connection.close()
    storage = open_storage(f"sqlite:///{path}")
    try:
        assert [h.uuid for h in search(storage, "refund")] == [AGENT]
    finally:
        storage.close()


def test_a_conversation_exports_as_one_transcript_with_speakers_by_time(database_url):
    storage = open_storage(database_url)
    try:
        store_conversation(storage)
        document = json.loads(export_conversation(storage, "1764579600.42", "json"))
        assert [(s["speaker"], s["start_s"]) for s in document["segments"]] == [
            ("agent", 0.5), ("customer", 3.0), ("agent", 5.5)]  # the customer leg began 2 s later
        assert [c["uuid"] for c in document["calls"]] == [AGENT, CUSTOMER]
        srt = export_conversation(storage, "1764579600.42", "srt")
        assert srt.splitlines()[:7] == [
            "1", "00:00:00,500 --> 00:00:02,400", "agent: Thank you for calling, how can I help?",
            "", "2", "00:00:03,000 --> 00:00:05,000", "customer: I would like a refund please."]
        assert "agent: Sure, let me cancel that order." in export_conversation(storage, "1764579600.42", "vtt")
        assert export_conversation(storage, "no-such", "txt") is None
        single = json.loads(export_call(storage, CUSTOMER, "json"))
        assert (single["speaker"], single["conversation"]) == ("customer", "1764579600.42")
    finally:
        storage.close()


def test_cli_search_and_conversation_export(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/calls.db"
    storage = open_storage(url)
    store_conversation(storage)
    storage.close()
    assert cli.main(["search", "refund", "--storage", url]) == 0
    line = capsys.readouterr().out.strip()
    assert CUSTOMER in line and line.endswith("customer: I would like a refund please.")
    assert cli.main(["search", "nothing-said", "--storage", url]) == 1
    assert cli.main(["export", "1764579600.42", "--conversation", "--format", "txt",
                     "--storage", url]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "customer: I would like a refund please."


def test_an_alert_phrase_reaches_ami_the_stream_and_storage(tmp_path):
    ami = FakeAmi({"transcriber": transcriber("s3cret")})
    ami.start()
    config = AmiConfig(port=ami.port, secret="s3cret", backoff_initial_s=0.05, connect_timeout_s=1.0)

    async def scenario():
        async with bridge_under_test(tmp_path, metrics=True, ami=config,
                                     alerts=parse_rules(["segment 1"]), registration_wait_s=0.2,
                                     http_access=HttpAccess(token=TOKEN)) as bridge:
            assert await asyncio.to_thread(bridge.ami_sink.wait_connected, 5)
            client = await caller(bridge).connect()
            bridge.registrations.register(Registration(client.call_uuid, "PJSIP/c-1",
                                                       options=CallOptions(alerts="segment 2")))
            listener = await StreamClient(bridge.metrics_server.address, call=client.call_uuid).open()
            await client.send_silence(3.0)
            await client.finish("hangup")
            assert await bridge.live.wait_ended(client.call_uuid, 5)
            assert await listener.wait_for(lambda ms: any(m["type"] == "call_ended" for m in ms))
            await listener.close()
            assert_valid(listener.messages)
            return client.call_uuid, listener.of("alert"), call_alerts(bridge.storage, client.call_uuid), \
                json.loads(export_call(bridge.storage, client.call_uuid, "json"))["alerts"]

    try:
        uuid, streamed, stored, exported = run(scenario())
        assert [(m["segment"], m["rule"], m["matched"]) for m in streamed] == [
            (1, "segment 1", "segment 1"), (2, "segment 2", "segment 2")]
        assert [(a.segment_index, a.rule) for a in stored] == [(1, "segment 1"), (2, "segment 2")]
        assert [a["rule"] for a in exported] == ["segment 1", "segment 2"]
        assert ami.wait_for(lambda f: len(_alerts(f, uuid)) == 2)
        first = _alerts(ami, uuid)[0]
        assert (first.get("Channel"), first.get("Segment"), first.get("Rule"), first.get("Text")) == (
            "PJSIP/c-1", "1", "segment 1", "segment 1")
    finally:
        ami.stop()


def _alerts(ami, uuid):
    return [a for a in ami.named("UserEvent")
            if a.get("UserEvent") == "TranscriptAlert" and a.get("Uuid") == uuid]
