"""Recorded calls into storage (`audiosocket-bridge transcribe`): how a recording becomes calls, and
real recordings (Asterisk prompts converted with sox, a MixMonitor-style stereo file) transcribed by
tiny.en, stored through the bridge's own sinks, exported and delivered by its webhook."""
from __future__ import annotations

import asyncio
import hashlib
import json
import re
import subprocess
import uuid as uuid_lib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from audiosocket_bridge import cli
from audiosocket_bridge.bridge import Bridge
from audiosocket_bridge.config import BridgeConfig
from audiosocket_bridge.outputs.export import export_call
from audiosocket_bridge.outputs.storage import open_storage
from audiosocket_bridge.recordings import (RECORDING_NAMESPACE, RecordingError, RecordingOptions, finals,
                                           parse_speakers, plan_legs, transcribe_into_storage)  # fmt: skip
from tests.support.bridges import bridge_under_test, run
from audiosocket_bridge.testing.voices import read_number
from tests.support.webhook_receiver import WebhookReceiver
from tests.support.webhook_receiver import fast_options
from whisper.normalizers import EnglishTextNormalizer

SOUNDS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
PASSWORD = "please enter your password followed by the pound key"
ENDED = datetime(2026, 12, 7, 10, 0, tzinfo=timezone.utc)
CARD = "4539148803436467"  # a Luhn-valid test number (tiny.en loops on 4111 1111 ...: 1 1 1 1 ...)
NORMALISE = EnglishTextNormalizer()


def sox(*args: object) -> None:
    subprocess.run(["sox", "-D", *map(str, args)], check=True, capture_output=True, timeout=60)


@pytest.fixture
def recordings(tmp_path) -> dict:
    """A MixMonitor D recording (caller left, callee right), a mono GSM one named by its Asterisk
    uniqueid, and a file that is not audio."""
    sox("-M", SOUNDS / "agent-pass.wav", SOUNDS / "vm-goodbye.wav", tmp_path / "call.wav")
    sox(SOUNDS / "auth-thankyou.wav", "-t", "gsm", tmp_path / "1733590000.42.gsm")
    (tmp_path / "notes.mp3").write_text("not audio\n" * 50)
    return {"stereo": tmp_path / "call.wav", "mono": tmp_path / "1733590000.42.gsm", "bad": tmp_path / "notes.mp3"}


# ---------------------------------------------------------------- planning (pure)

def test_a_mono_recording_is_one_call_with_a_uuid_from_its_contents(tmp_path):
    (tmp_path / "a.sln").write_bytes(b"\x00\x01" * 800)
    (tmp_path / "b.sln").write_bytes(b"\x00\x02" * 800)
    [leg] = plan_legs(tmp_path / "a.sln", 1, 8000, 0.1, RecordingOptions(), ENDED)
    again = plan_legs(tmp_path / "a.sln", 1, 8000, 0.1, RecordingOptions(), ENDED)[0]
    other = plan_legs(tmp_path / "b.sln", 1, 8000, 0.1, RecordingOptions(), ENDED)[0]
    assert leg.call.uuid == again.call.uuid != other.call.uuid and uuid_lib.UUID(leg.call.uuid)
    assert leg.call.registration.linkedid is None and leg.call.registration.channel == "Recording/a.sln"
    assert leg.call.registration.options.conversation is None and leg.call.redaction == "pci"
    assert (leg.call.started_at, leg.call.ended_at) == (ENDED - timedelta(seconds=0.1), ENDED)


def test_a_stereo_recording_is_two_legs_linked_by_one_id(tmp_path):
    (tmp_path / "1733590000.42.wav").write_bytes(b"x")
    given = "7C9E6679-7425-40DE-944B-E07FC1F90AE7"
    legs = plan_legs(tmp_path / "1733590000.42.wav", 2, 8000, 3.0,
                     RecordingOptions(uuid=given, speakers=("agent", "customer")), ENDED)  # fmt: skip
    assert [leg.channel for leg in legs] == [0, 1]
    assert len({leg.call.uuid for leg in legs} | {given.lower()}) == 3
    assert {leg.call.registration.linkedid for leg in legs} == {"1733590000.42"}  # the Asterisk id in the name
    assert [leg.call.registration.options.speaker for leg in legs] == ["agent", "customer"]
    assert {leg.call.registration.options.conversation for leg in legs} == {"1733590000.42"}
    (tmp_path / "call.wav").write_bytes(b"x")
    unnamed = plan_legs(tmp_path / "call.wav", 2, 8000, 3.0, RecordingOptions(uuid=given), ENDED)
    assert {leg.call.registration.linkedid for leg in unnamed} == {given.lower()}  # the recording's UUID
    named = plan_legs(tmp_path / "call.wav", 2, 8000, 3.0, RecordingOptions(uuid=given, linkedid="1.2"), ENDED)
    assert {leg.call.registration.linkedid for leg in named} == {"1.2"}


def test_more_than_two_channels_and_bad_speakers_are_refused(tmp_path):
    (tmp_path / "conf.wav").write_bytes(b"x")
    with pytest.raises(RecordingError, match="3 channels"):
        plan_legs(tmp_path / "conf.wav", 3, 8000, 1.0, RecordingOptions(), ENDED)
    with pytest.raises(RecordingError, match="two labels"):
        parse_speakers("caller")


def segment(start_s: float, text: str, no_speech: float = 0.1, logprob: float = -0.3, ratio: float = 1.0) -> dict:
    return {"start": start_s, "end": start_s + 1.0, "text": text, "avg_logprob": logprob, "no_speech_prob": no_speech,
            "compression_ratio": ratio}  # fmt: skip


def test_finals_are_the_spoken_segments_numbered_from_zero():
    result = {"language": "en", "segments": [segment(0.0, " Hello."), segment(1.0, " "), segment(2.0, " Goodbye.")]}
    events = finals("u", result)
    assert [(e.segment_index, e.text, e.start_s, e.is_final) for e in events] == [
        (0, " Hello.", 0.0, True), (1, " Goodbye.", 2.0, True)]  # fmt: skip


def test_finals_leave_out_what_the_live_guards_drop():
    """As tiny.en decodes a silent leg (" you", no-speech 0.94) and line noise (". . .", ratio 22.9)."""
    result = {"language": "en", "segments": [
        segment(0.0, " you", no_speech=0.94, logprob=-0.72), segment(1.0, " . . . . . . . .", 0.95, -0.09, 22.9),
        segment(2.0, " Please enter your password.", no_speech=0.02)]}  # fmt: skip
    assert [(e.segment_index, e.text) for e in finals("u", result)] == [(0, " Please enter your password.")]


# ---------------------------------------------------------------- real recordings

def transcript(storage, uuid: str) -> str:
    return NORMALISE(json.loads(export_call(storage, uuid, "json"))["text"])


def stored_calls(progress: list[str]) -> dict:
    """{file name or file name/speaker: UUID} from the command's progress lines."""
    calls = {}
    for line in progress:
        found = re.fullmatch(r"\[\d+/\d+\] \S*/([^/ ]+)(?: \((\w+)\))?: \d+ final\(s\) stored as call (\S+)", line)
        if found:
            calls[found[1] + (f"/{found[2]}" if found[2] else "")] = found[3]
    return calls


def test_the_command_stores_each_leg_and_skips_what_is_stored(recordings, tmp_path, capsys):
    storage_url = f"sqlite:///{tmp_path}/calls.db"
    files = [str(recordings[k]) for k in ("stereo", "mono", "bad")]
    assert cli.main(["transcribe", *files, "--storage", storage_url, "--speakers", "caller,callee"]) == 1
    progress = capsys.readouterr().err.splitlines()
    assert any(line.startswith("[3/3] error: ") and "notes.mp3" in line for line in progress)
    assert progress[-1] == "3 call(s) stored, 0 already stored, 1 recording(s) unreadable"
    calls = stored_calls(progress)
    assert sorted(calls) == ["1733590000.42.gsm", "call.wav/callee", "call.wav/caller"]
    storage = open_storage(storage_url)
    try:
        exported = {name: json.loads(export_call(storage, uuid, "json")) for name, uuid in calls.items()}
        assert NORMALISE(exported["call.wav/caller"]["text"]) == PASSWORD
        assert NORMALISE(exported["call.wav/callee"]["text"]) == "goodbye"
        assert NORMALISE(exported["1733590000.42.gsm"]["text"]) == "thank you"
        assert exported["call.wav/callee"]["channel"] == "Recording/call.wav"
        assert {doc["end_reason"] for doc in exported.values()} == {"recording"}
        linked = storage.query("SELECT uuid, linkedid FROM calls")
        assert {linkedid for uuid, linkedid in linked if uuid in (calls["call.wav/caller"], calls["call.wav/callee"])} \
            == {str(uuid_lib.uuid5(RECORDING_NAMESPACE, hashlib.sha256(recordings["stereo"].read_bytes()).hexdigest()))}
        assert dict(linked)[calls["1733590000.42.gsm"]] == "1733590000.42"
        segments_before = {uuid: len(storage.get_segments(uuid)) for uuid in calls.values()}
    finally:
        storage.close()
    assert cli.main(["search", "password", "--storage", storage_url]) == 0
    assert calls["call.wav/caller"] in capsys.readouterr().out  # search finds the recording's words
    assert cli.main(["transcribe", files[0], "--storage", storage_url]) == 0
    assert capsys.readouterr().err.splitlines()[-1] == "0 call(s) stored, 2 already stored, 0 recording(s) unreadable"
    storage = open_storage(storage_url)
    try:
        assert {uuid: len(storage.get_segments(uuid)) for uuid in calls.values()} == segments_before
    finally:
        storage.close()


def test_recordings_go_through_the_bridges_sink_chain(recordings, tmp_path, tiny_model, monkeypatch):
    """A sink the bridge puts first (as it does its storage) sees a recording's finals in order, before
    storage has them: recordings go through the bridge's own chain, whatever it holds."""
    seen = []

    class FirstSink:
        async def call_started(self, call):
            seen.append(("started", call.uuid))

        async def transcript(self, call, event):
            seen.append(("final", call.uuid, len(storage_segments(call.uuid))))

        async def call_ended(self, call):
            seen.append(("ended", call.uuid))

        async def close(self):
            return None

    chain = Bridge._sinks_in_order
    monkeypatch.setattr(Bridge, "_sinks_in_order", lambda bridge: [FirstSink(), *chain(bridge)])
    settings = BridgeConfig(storage=f"sqlite:///{tmp_path}/calls.db")

    def storage_segments(uuid):
        storage = open_storage(settings.storage)
        try:
            return storage.get_segments(uuid)
        finally:
            storage.close()

    outcome = asyncio.run(transcribe_into_storage(settings, RecordingOptions(), tiny_model, [recordings["mono"]]))
    assert outcome.stored == 1
    [(_, uuid), (_, uuid_final, stored_before), (_, uuid_end)] = seen
    assert uuid == uuid_final == uuid_end and stored_before == 0  # it had the final before storage did
    assert len(storage_segments(uuid)) == 1


def test_the_bridges_webhook_delivers_stored_recordings(recordings, tmp_path, monkeypatch, capsys):
    receiver = WebhookReceiver()
    options = fast_options(receiver.url)
    environ = {"AUDIOSOCKET_WEBHOOK_URL": receiver.url, "AUDIOSOCKET_WEBHOOK_SECRET": options.secret}
    storage_url = f"sqlite:///{tmp_path}/calls.db"
    assert cli.run_transcribe([str(recordings["stereo"]), "--storage", storage_url], environ) == 0
    calls = stored_calls(capsys.readouterr().err.splitlines())

    async def deliver():
        async with bridge_under_test(tmp_path, webhook=options):  # a bridge running on the same storage
            assert await asyncio.to_thread(receiver.wait_accepted, 2, 20.0)

    with receiver.up():
        run(deliver())
    delivered = {r.document["uuid"]: NORMALISE(r.document["text"]) for r in receiver.accepted}
    assert delivered == {calls["call.wav/caller"]: PASSWORD, calls["call.wav/callee"]: "goodbye"}


def test_a_stereo_recording_exports_as_a_two_speaker_conversation(recordings, tmp_path, capsys):
    storage_url = f"sqlite:///{tmp_path}/calls.db"
    stereo = str(recordings["stereo"])
    assert cli.main(["transcribe", stereo, "--storage", storage_url, "--linkedid", "1733590000.77",
                     "--speakers", "agent,customer"]) == 0  # fmt: skip
    calls = stored_calls(capsys.readouterr().err.splitlines())
    assert cli.main(["export", "1733590000.77", "--conversation", "--format", "json", "--storage", storage_url]) == 0
    document = json.loads(capsys.readouterr().out)
    assert {(leg["speaker"], leg["uuid"]) for leg in document["calls"]} == {
        ("agent", calls["call.wav/agent"]), ("customer", calls["call.wav/customer"])}  # fmt: skip
    said = {s["speaker"]: NORMALISE(s["text"]) for s in document["segments"]}
    assert said == {"agent": PASSWORD, "customer": "goodbye"}
    assert cli.main(["export", "1733590000.77", "--conversation", "--format", "srt", "--storage", storage_url]) == 0
    cues = capsys.readouterr().out
    assert "agent: Please enter your password" in cues and "customer: Goodbye" in cues, cues


def test_a_card_number_in_a_recording_is_stored_redacted(tmp_path, capsys):
    """Redaction applies to recordings as to live calls: with the default policy the digits tiny.en
    hears are not stored; with --redact off (the proof that it heard them) they are."""
    path = tmp_path / "card.sln"
    path.write_bytes(read_number("en", CARD, pause_s=0.25))
    texts = {}
    for policy in ("pci", "off"):
        storage_url = f"sqlite:///{tmp_path}/{policy}.db"
        assert cli.main(["transcribe", str(path), "--storage", storage_url, "--redact", policy]) == 0
        [uuid] = stored_calls(capsys.readouterr().err.splitlines()).values()
        storage = open_storage(storage_url)
        try:
            texts[policy] = " ".join(s.text for s in storage.get_segments(uuid))
            assert storage.get_call(uuid).redaction == policy
        finally:
            storage.close()
    assert re.sub(r"\D", "", texts["off"]) == CARD, texts
    assert "[card]" in texts["pci"] and not re.search(r"\d{4}", re.sub(r"\W", "", texts["pci"])), texts


def test_a_silent_leg_is_stored_without_invented_words(tmp_path, capsys):
    """tiny.en decodes 8 s of silence as " you"; the live engine's guards leave it out here too."""
    sox("-n", "-r", "8000", "-c", "1", "-b", "16", tmp_path / "silence.wav", "trim", "0", "8")
    sox("-M", SOUNDS / "agent-pass.wav", tmp_path / "silence.wav", tmp_path / "one-sided.wav")
    storage_url = f"sqlite:///{tmp_path}/calls.db"
    assert cli.main(["transcribe", str(tmp_path / "one-sided.wav"), "--storage", storage_url]) == 0
    calls = stored_calls(capsys.readouterr().err.splitlines())
    storage = open_storage(storage_url)
    try:
        assert NORMALISE(storage.transcript_text(calls["one-sided.wav/caller"])) == PASSWORD
        assert storage.transcript_text(calls["one-sided.wav/callee"]) == ""
    finally:
        storage.close()
