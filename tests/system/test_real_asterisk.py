"""End to end on a real Asterisk 22 (built from source by tests/asterisk_pbx.py, or yours through
ASTERISK_BINARY), with the project's own dialplan/extensions.conf and dialplan/manager.conf
loaded, and the bridge running as its own process with the real tiny.en model.

Calls without phones: an AMI Originate of ``Local/play@test-caller`` whose ``;2`` half plays a
script of Debian's Asterisk prompts (``${SCRIPT}``: ``wait:S``, ``play:NAME``, ``dtmf:DIGITS``
steps joined by ``^``) into the ``;1`` half, which runs the example extension under test.
In CI (CI=true) these tests fail instead of skipping when no Asterisk can be had.
"""
from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.ami_observer import AmiObserver
from tests.support.pbx_calls import PlacedCall, observed, pbx_for_tests, place_call, running, texts_of
from tests.asterisk_pbx import Asterisk, manager_user_setting
from tests.support.bridge_process import BridgeProcess
from audiosocket_bridge.testing.ports import free_port
from whisper.evaluation import english_wer

TWO_PARTY_DIAL = "Dial(PJSIP/${EXTEN:1},30,"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("real-asterisk")


@pytest.fixture(scope="module")
def bridge(workdir, pbx_port) -> Iterator[BridgeProcess]:
    process = BridgeProcess(workdir / "bridge", ami_port=pbx_port,
                            ami_secret=manager_user_setting("transcriber", "secret"))
    yield process
    process.stop()


@pytest.fixture(scope="module")
def pbx_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def pbx(workdir, pbx_port, bridge) -> Iterator[Asterisk]:
    asterisk = pbx_for_tests(workdir, pbx_port, {"TRANSCRIBER": bridge.transcriber,
                                                 "FASTAGI": bridge.fastagi},
                        substitutions={TWO_PARTY_DIAL: "Dial(Local/${EXTEN:1}@test-callee/n,30,"})
    yield from running(asterisk, bridge)


@pytest.fixture(scope="module")
def ami(pbx) -> Iterator[AmiObserver]:
    yield from observed(pbx)


def test_ami_user_has_least_rights(pbx, ami):
    shown = pbx.cli("manager show user transcriber")
    assert re.search(r"read perm: user\s*$", shown, re.M), shown
    assert re.search(r"write perm: call,user\s*$", shown, re.M), shown
    assert ami.banner == "Asterisk Call Manager/11.0.0"


def test_audiosocket_app_transcript_on_the_channel_and_captions(pbx, ami, bridge):
    """Example 1: TRANSCRIPT set live over AMI, captions as UserEvents, the h extension's
    FastAGI transcript after hangup."""
    names = ("conf-getpin", "vm-goodbye")
    call = place_call(ami, "transcribe-caller", "600", "wait:1^play:conf-getpin^wait:1^play:vm-goodbye^wait:1.5")
    uuid = call.wait_var("ID", 20).get("Value")
    live = call.wait_var("TRANSCRIPT", 60)
    assert call.var_sets("TRANSCRIPT_SEGMENTS")
    status = call.wait_var("TRANSCRIPT_STATUS", 60)  # h extension, after the hangup
    assert status.get("Value") == "OK"
    whole = call.var_sets("TRANSCRIPT")[-1].get("Value")
    assert english_wer([texts_of(*names)], [whole]) < 0.3, whole
    assert call.ami.index_of(live) < call.ami.index_of(status)
    finals = call.captions(uuid)
    assert finals and all(m.get("Channel") == call.channel for m in finals)
    stored, segments = bridge.stored(uuid)
    assert stored.channel == call.channel and len(segments) >= len(names) - 1
    assert "Reached timeout" not in pbx.log_text()


def test_dial_audiosocket_channel_in_slin16(pbx, ami, bridge):
    """Example 2: Dial(AudioSocket/host:port/uuid/c(slin16)), transcript by FastAGI in h."""
    call = place_call(ami, "transcribe-dial", "601", "wait:1^play:conf-getpin^wait:1.5")
    uuid = call.wait_var("ID", 20).get("Value")
    assert call.wait_var("TRANSCRIPT_STATUS", 60).get("Value") == "OK"
    text = call.var_sets("TRANSCRIPT")[-1].get("Value")
    assert english_wer([texts_of("conf-getpin")], [text]) < 0.3, text
    with sqlite3.connect(bridge.storage_url.removeprefix("sqlite:///")) as db:
        assert db.execute("SELECT sample_rate_hz FROM calls WHERE uuid = ?", (uuid,)).fetchone() == (16000,)
    assert "look like G.711" not in bridge.log_text()


def test_dtmf_digits_reach_the_bridge(pbx, ami, bridge):
    call = place_call(ami, "transcribe-caller", "600", "wait:1^dtmf:12#9^play:vm-goodbye^wait:1")
    uuid = call.wait_var("ID", 20).get("Value")
    call.wait_var("TRANSCRIPT_STATUS", 60)
    stored, _ = bridge.stored(uuid)
    assert "".join(digit for _, digit in stored.dtmf) == "12#9"


def test_caller_silent_without_media_keeps_the_call_and_is_finalised(pbx, ami, bridge):
    """Wait() sends no frames: without the bridge's keep-alive AudioSocket() hangs up after 2 s;
    without wall-clock endpointing the first utterance would wait for the second."""
    call = place_call(ami, "transcribe-caller", "600",
                      "wait:1^play:conf-getpin^wait:5^play:vm-goodbye^wait:1")
    uuid = call.wait_var("ID", 20).get("Value")
    call.wait_var("TRANSCRIPT_STATUS", 60)
    second_prompt = ami.wait_for(lambda m: m.event == "Newexten" and m.get("Channel") == call.player
                                 and m.get("Application") == "Playback"
                                 and m.get("AppData") == "vm-goodbye", 5, call.mark)
    finals = call.captions(uuid)
    assert len(finals) >= 2, [m.get("Text") for m in finals]
    assert ami.index_of(finals[0]) < ami.index_of(second_prompt)
    assert english_wer([texts_of("conf-getpin", "vm-goodbye")],
                       [" ".join(m.get("Text") for m in finals)]) < 0.3
    assert "Reached timeout" not in pbx.log_text()


def _ivr_call(ami: AmiObserver, context: str, exten: str, script: str, **variables: str) -> PlacedCall:
    call = place_call(ami, context, exten, script, **variables)
    call.wait_hangup(60)
    return call


def test_speech_ivr_branches_on_the_transcript(pbx, ami, bridge):
    """Example 4: the first final ends AudioSocket() (0, not -1: the dialplan goes on), TRANSCRIPT
    is on the channel (AMI Setvar acknowledged) before the dialplan's next step runs."""
    call = _ivr_call(ami, "speech-ivr", "700", "wait:1.5^play:vm-reachoper^wait:20")
    after_audiosocket = ami.wait_for(lambda m: m.event == "Newexten" and m.get("Channel") == call.channel
                                     and m.get("Application") == "AGI" and "transcript" in m.get("AppData"),
                                     5, call.mark)
    live = call.var_sets("TRANSCRIPT")[0]
    assert ami.index_of(live) < ami.index_of(after_audiosocket), "TRANSCRIPT set after AudioSocket() returned"
    assert "operator" in live.get("Value").lower()
    assert call.reached("operator") and not call.reached("ivr-nomatch") and not call.reached("ivr-noinput")
    assert call.var_sets("TRANSCRIPT_STATUS")[-1].get("Value") == "OK"


def test_speech_ivr_no_input_timeout(pbx, ami, bridge):
    """A caller who says nothing (and sends no media at all): the bridge's keep-alive holds
    AudioSocket() up until the no-input timeout, then the dialplan goes on to ivr-noinput."""
    call = _ivr_call(ami, "speech-ivr", "700", "wait:14")
    assert call.reached("ivr-noinput") and not call.reached("ivr-nomatch")
    assert "Reached timeout" not in pbx.log_text()


def test_speech_ivr_without_ami(pbx, ami, workdir):
    """No AMI configured: the transcript AGI after AudioSocket() still routes the call."""
    plain = BridgeProcess(workdir / "bridge-without-ami").start()
    try:
        call = _ivr_call(ami, "speech-ivr", "700", "wait:1.5^play:vm-reachoper^wait:20",
                         TRANSCRIBER=plain.transcriber, FASTAGI=plain.fastagi)
    finally:
        plain.stop()
    assert call.reached("operator") and not call.reached("ivr-nomatch")
    assert "operator" in call.var_sets("TRANSCRIPT")[-1].get("Value").lower()


def test_two_party_captions_one_stream_per_speaker(pbx, ami, bridge):
    """Example 3 on a real bridged call of two Local channels: one ChanSpy + AudioSocket stream per
    leg, captions labelled with the speaker, spies started after answer."""
    mark = ami.mark()
    call = place_call(ami, "two-party", "7001", "wait:2^play:conf-getpin^wait:7",
                      __CALLEE_SCRIPT="wait:5.5^play:vm-goodbye^wait:3")
    call.wait_hangup(60)
    by_speaker: dict[str, list[str]] = {}
    ami.wait_for(lambda m: m.event == "UserEvent" and m.get("UserEvent") == "TranscriptEnd", 20, mark)
    legs = set()
    for event in ami.matching(lambda m: m.event == "UserEvent" and m.get("UserEvent") == "Transcript"
                              and m.get("Final") == "1", mark):
        by_speaker.setdefault(event.get("Speaker"), []).append(event.get("Text"))
        legs.add(event.get("Uuid"))
    # both legs stored as one conversation: the caller's linkedid (Conversation: ${CHANNEL(linkedid)})
    stored = [bridge.stored(uuid)[0] for uuid in sorted(legs)]
    assert {c.speaker for c in stored} == {"caller", "callee"}
    assert len({c.conversation for c in stored}) == 1 and stored[0].conversation, stored
    assert set(by_speaker) == {"caller", "callee"}, by_speaker
    assert english_wer([texts_of("conf-getpin")], [" ".join(by_speaker["caller"])]) < 0.3, by_speaker
    assert english_wer([texts_of("vm-goodbye")], [" ".join(by_speaker["callee"])]) < 0.3, by_speaker
    assert "Reached timeout" not in pbx.log_text()


def test_ami_session_kicked_mid_call_loses_no_final(pbx, ami, bridge):
    names = ("conf-getpin", "vm-goodbye", "auth-thankyou")
    call = place_call(ami, "transcribe-caller", "600",
                      "wait:1^play:conf-getpin^wait:1^play:vm-goodbye^wait:1^play:auth-thankyou^wait:1")
    uuid = call.wait_var("ID", 20).get("Value")
    ami.wait_for(lambda m: m.event == "UserEvent" and m.get("UserEvent") == "Transcript"
                 and m.get("Uuid") == uuid and m.get("Final") == "1", 30, call.mark)
    connected = pbx.cli("manager show connected")
    fds = [line.split()[4] for line in connected.splitlines() if line.split()[:1] == ["transcriber"]]
    assert len(fds) == 1, connected
    pbx.cli(f"manager kick session {fds[0]}")
    call.wait_var("TRANSCRIPT_STATUS", 60)
    _, segments = bridge.stored(uuid)
    bridge.wait_for_log("AMI connected", 10)
    ami.wait_for(lambda m: m.event == "UserEvent" and m.get("UserEvent") == "TranscriptEnd"
                 and m.get("Uuid") == uuid, 20, call.mark)
    captioned = {m.get("Segment") for m in call.captions(uuid)}
    assert {str(s.index) for s in segments} <= captioned, (captioned, segments)
    assert len(segments) >= len(names) - 1
    assert bridge.log_text().count("AMI connected") >= 2


def test_refused_call_continues_in_the_dialplan(pbx, ami, workdir):
    """A bridge at --max-calls refuses with a hangup frame, then reads what Asterisk already sent
    (the UUID, audio) before closing: closing with it unread would send RST, AudioSocket() would
    return -1 and hang the call up instead of going on to the next priority."""
    full = BridgeProcess(workdir / "bridge-full", extra_args=["--max-calls", "0"]).start()
    try:
        call = place_call(ami, "transcribe-caller", "600", "play:conf-getpin^wait:2",
                          TRANSCRIBER=full.transcriber, FASTAGI=full.fastagi)
        call.wait_hangup(30)
    finally:
        full.stop()
    after = [m for m in call.reached("transcribe-caller") if m.get("Application") == "Hangup"]
    assert after, "AudioSocket() did not return 0"
    assert "refusing connection" in full.log_text()
    assert "Connection reset" not in pbx.log_text()


def test_digits_grammar_ends_the_ivr_with_the_number(pbx, ami, bridge):
    """Example 5: an account number read digit by digit; TRANSCRIPT is the number, in numerals."""
    digits = "40719"
    script = "wait:1^" + "^".join(f"play:digits/{d}" for d in digits) + "^wait:15"
    call = _ivr_call(ami, "speech-digits", "710", script)
    assert call.reached("account") and not call.reached("ivr-noinput")
    assert call.var_sets("ACCOUNT")[-1].get("Value") == digits
    confidence = float(call.var_sets("TRANSCRIPT_CONFIDENCE")[-1].get("Value"))
    assert 0.5 < confidence <= 1.0
