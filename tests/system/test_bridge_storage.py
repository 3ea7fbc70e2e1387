"""Storage (SQLite WAL; PostgreSQL when a server can be had) and transcript export."""
import json
import subprocess
import sys
import textwrap
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest

from audiosocket_bridge.outputs.export import export_call
from audiosocket_bridge.outputs.storage import StoredWord, open_storage, sqlite_path
from tests.support.builders import STORED_CALL, fill_storage, stored_call, stored_final
from whisper.streaming.types import Word

REPO = Path(__file__).resolve().parents[2]


def check_round_trip(storage) -> None:
    fill_storage(storage)
    stored = storage.get_call(STORED_CALL)
    assert stored.channel == "PJSIP/alice-00000001"
    assert stored.started_at == datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert stored.end_reason == "hangup" and stored.language == "en"
    assert stored.dtmf == ((1.5, "4"),)
    assert [(s.index, s.text) for s in storage.get_segments(STORED_CALL)] == [
        (0, " Hello there."), (1, " Goodbye.")]
    assert storage.transcript_text(STORED_CALL) == "Hello there. Goodbye."
    assert storage.transcript_text("00000000-0000-0000-0000-000000000000") is None


def test_sqlite_round_trip_in_wal_mode(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/t.db")
    assert storage.journal_mode == "wal"
    check_round_trip(storage)
    storage.close()


def test_a_reused_uuid_continues_the_stored_call(tmp_path):
    """A speech-IVR loop runs AudioSocket() again with the same ID: nothing of either session is lost."""
    storage = open_storage(f"sqlite:///{tmp_path / 't.db'}")
    fill_storage(storage)
    again = stored_call()
    storage.record_call_start(again)
    storage.record_final(again, stored_final(0, " Sales, please.", 0.4, 1.2))
    storage.record_call_end(again)
    texts = [(s.index, s.text) for s in storage.get_segments(STORED_CALL)]
    assert texts == [(0, " Hello there."), (1, " Goodbye."), (2, " Sales, please.")]
    assert storage.transcript_text(STORED_CALL) == "Hello there. Goodbye. Sales, please."


def test_sqlite_url_paths():
    assert sqlite_path("sqlite:///transcripts.db") == "transcripts.db"
    assert sqlite_path("sqlite:////var/lib/x.db") == "/var/lib/x.db"
    with pytest.raises(ValueError):
        open_storage("mysql://x")


def test_finals_survive_a_crash(tmp_path):
    """A process killed mid-call (no close, no call end) keeps every committed final."""
    db = tmp_path / "crash.db"
    script = textwrap.dedent(f"""
        import os
        from tests.support.builders import stored_call, stored_final
        from audiosocket_bridge.outputs.storage import open_storage
        storage = open_storage("sqlite:///{db}")
        call = stored_call()
        storage.record_call_start(call)
        storage.record_final(call, stored_final(0, "first words", 0.0, 1.0))
        storage.record_final(call, stored_final(1, "second words", 1.0, 2.0))
        os._exit(9)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, timeout=120)
    assert result.returncode == 9
    reopened = open_storage(f"sqlite:///{db}")
    assert reopened.transcript_text(STORED_CALL) == "first words second words"
    assert reopened.get_call(STORED_CALL).ended_at is None
    reopened.close()


# ---------------------------------------------------------------- PostgreSQL

def test_postgresql_round_trip(postgres_url):
    storage = open_storage(postgres_url)
    try:
        check_round_trip(storage)
    finally:
        storage.close()


# ---------------------------------------------------------------- export

def test_export_times_in_milliseconds_from_zero_and_without_empty_segments(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/e.db")
    call = stored_call()
    storage.record_call_start(call)
    for index, (text, start_s) in enumerate([(" part 0", 0.0), (" part 1", 59.9996),
                                             (" part 2", -1.0), (" ", 5.0)]):
        storage.record_final(call, stored_final(index, text, start_s, 3661.2))
    srt, vtt = export_call(storage, STORED_CALL, "srt"), export_call(storage, STORED_CALL, "vtt")
    assert srt.startswith("1\n00:00:00,000 --> 01:01:01,200\npart 0\n\n")
    assert "\n00:01:00.000 --> 01:01:01.200\npart 1\n" in vtt  # rounded to the millisecond
    assert srt.endswith("\n3\n00:00:00,000 --> 01:01:01,200\npart 2\n")  # before 0 is 0
    assert export_call(storage, STORED_CALL, "txt") == "part 0\npart 1\npart 2\n"
    storage.close()


def test_the_stored_words_are_read_back_and_exported_in_json(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/e.db")
    call = stored_call()
    storage.record_call_start(call)
    words = (Word(" Hello", 0.5, 0.9, 0.98), Word(" there.", 0.9, 1.75, 0.91))
    storage.record_final(call, replace(stored_final(0, " Hello there.", 0.5, 1.75), words=words))
    assert storage.get_segments(STORED_CALL)[0].words == (
        StoredWord(" Hello", 0.5, 0.9, 0.98), StoredWord(" there.", 0.9, 1.75, 0.91))
    (segment,) = json.loads(export_call(storage, STORED_CALL, "json"))["segments"]
    assert segment["words"] == [
        {"text": " Hello", "start_s": 0.5, "end_s": 0.9, "probability": 0.98},
        {"text": " there.", "start_s": 0.9, "end_s": 1.75, "probability": 0.91}]
    storage.close()


@pytest.fixture()
def filled(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/e.db")
    fill_storage(storage)
    yield storage
    storage.close()


def test_export_formats(filled):
    assert export_call(filled, STORED_CALL, "txt") == "Hello there.\nGoodbye.\n"
    assert export_call(filled, STORED_CALL, "srt") == (
        "1\n00:00:00,500 --> 00:00:01,750\nHello there.\n\n"
        "2\n01:01:01,200 --> 01:01:02,000\nGoodbye.\n")
    assert export_call(filled, STORED_CALL, "vtt") == (
        "WEBVTT\n\n00:00:00.500 --> 00:00:01.750\nHello there.\n\n"
        "01:01:01.200 --> 01:01:02.000\nGoodbye.\n")
    document = json.loads(export_call(filled, STORED_CALL, "json"))
    assert document["uuid"] == STORED_CALL and document["text"] == "Hello there. Goodbye."
    assert document["dtmf"] == [{"time_s": 1.5, "digit": "4"}]
    assert [s["start_s"] for s in document["segments"]] == [0.5, 3661.2]
    assert export_call(filled, "00000000-0000-0000-0000-000000000000", "txt") is None
