"""Privacy on a real Asterisk 22 (tests/asterisk_pbx.py), the bridge as its own process with the
real tiny.en model, a FastAGI secret and a webhook: a card number read in groups reaches no
stored segment, AMI caption (final or partial), log line (DEBUG included), webhook body or export;
the card IVR (dialplan example 5b) still gets the number in TRANSCRIPT on its channel; FastAGI
without the secret gets nothing; the start-up line carries no secret."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from difflib import SequenceMatcher
from pathlib import Path
from typing import Iterator

import pytest

from tests.asterisk_pbx import REPO, Asterisk, manager_user_setting
from tests.support.ami_observer import AmiObserver
from tests.support.bridge_process import BridgeProcess
from tests.support.pbx_calls import observed, pbx_for_tests, place_call, running
from audiosocket_bridge.testing.ports import free_port
from tests.support.webhook_receiver import WebhookReceiver

CARD = "4539148803436467"  # Luhn-valid, not a real card
AGI_SECRET = "agi-s3cret-0123"
HOOK_TOKEN = "hook-s3cret-4567"
FOUR_DIGITS = re.compile(r"\d[\s,.-]?\d[\s,.-]?\d[\s,.-]?\d")


def read_aloud(digits: str, groups_of: int, pause_s: float) -> str:
    """A script reading `digits` with Asterisk's English digits, in groups with pauses."""
    groups = [digits[i:i + groups_of] for i in range(0, len(digits), groups_of)]
    return f"^wait:{pause_s}^".join("play:" + "&".join(f"digits/{d}" for d in group)
                                    for group in groups)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("real-asterisk-privacy")


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as up:
        yield up.up()


@pytest.fixture(scope="module")
def pbx_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def bridge(workdir, pbx_port, receiver) -> Iterator[BridgeProcess]:
    secret_file = workdir / "agi-secret"
    secret_file.write_text(AGI_SECRET + "\n")
    secret_file.chmod(0o600)
    process = BridgeProcess(workdir / "bridge", ami_port=pbx_port,
                            ami_secret=manager_user_setting("transcriber", "secret"),
                            extra_args=["--log-level", "DEBUG", "--agi-secret-file", str(secret_file),
                                        "--webhook-url", f"{receiver.url}?token={HOOK_TOKEN}",
                                        "--redact", "pci"])
    yield process
    process.stop()


@pytest.fixture(scope="module")
def pbx(workdir, pbx_port, bridge) -> Iterator[Asterisk]:
    asterisk = pbx_for_tests(workdir, pbx_port, {"TRANSCRIBER": bridge.transcriber,
                                                 "FASTAGI": bridge.fastagi})
    yield from running(asterisk, bridge)


@pytest.fixture(scope="module")
def ami(pbx) -> Iterator[AmiObserver]:
    yield from observed(pbx)


def export(bridge: BridgeProcess, uuid: str, fmt: str) -> str:
    done = subprocess.run([sys.executable, "-m", "audiosocket_bridge.cli", "export", uuid,
                           "--format", fmt, "--storage", bridge.storage_url],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def transcript_log_lines(bridge: BridgeProcess, uuid: str) -> list[str]:
    return [line for line in bridge.log_text().splitlines()
            if "audiosocket_bridge.transcript" in line and uuid in line and ("final" in line or "partial" in line)]


def test_a_card_number_read_in_groups_is_nowhere_but_redacted(pbx, ami, bridge, receiver):
    script = "wait:1^" + read_aloud(CARD, 4, 0.9) + "^wait:2.5"
    call = place_call(ami, "transcribe-caller", "600", script, AUDIOSOCKET_AGI_SECRET=AGI_SECRET)
    uuid = call.wait_var("ID", 20).get("Value")
    assert call.wait_var("TRANSCRIPT_STATUS", 90).get("Value") == "OK"  # h extension, with the secret
    record, segments = bridge.stored(uuid)
    texts = [s.text for s in segments]
    assert record.redaction == "pci" and any("[card]" in t for t in texts), texts
    assert not any(FOUR_DIGITS.search(t) for t in texts), texts
    finals, partials = call.captions(uuid), call.captions(uuid, final=False)
    assert finals and partials
    for caption in finals + partials:
        assert not FOUR_DIGITS.search(caption.get("Text")), caption.get("Text")
    lines = transcript_log_lines(bridge, uuid)
    assert lines and not any(FOUR_DIGITS.search(line.split("]", 1)[1]) for line in lines), lines
    assert CARD not in bridge.log_text()
    assert receiver.wait_accepted(1, 30)
    body = next(r.document for r in receiver.accepted if uuid in r.body.decode())
    assert_redacted_document(body)
    assert_redacted_document(json.loads(export(bridge, uuid, "json")))
    for fmt in ("txt", "srt", "vtt"):
        spoken = [line for line in export(bridge, uuid, fmt).splitlines()
                  if "-->" not in line and not line.strip().isdigit()]
        assert any("[card]" in line for line in spoken), spoken
        assert not any(FOUR_DIGITS.search(line) for line in spoken), spoken


def assert_redacted_document(document: dict) -> None:
    """A webhook body or JSON export: its text, segments and words, and its DTMF."""
    texts = [document["text"]] + [s["text"] for s in document["segments"]] + [
        w["text"] for s in document["segments"] for w in s["words"]]
    assert "[card]" in document["text"] and document["redaction"] == "pci", document
    assert not any(FOUR_DIGITS.search(t) for t in texts), texts


def test_the_card_ivr_gets_the_number_on_its_channel_only(pbx, ami, bridge):
    script = "wait:1^" + read_aloud(CARD, 4, 0.3) + "^wait:20"
    call = place_call(ami, "speech-card", "711", script, AUDIOSOCKET_AGI_SECRET=AGI_SECRET)
    uuid = call.wait_var("ID", 20).get("Value")
    call.wait_hangup(90)
    assert call.reached("payment"), "the IVR did not get a card number"
    heard = call.var_sets("CARD")[-1].get("Value")  # what tiny.en heard: a digit may be missed
    assert heard.isdigit() and SequenceMatcher(None, heard, CARD).ratio() > 0.9, heard
    live = [m.get("Value") for m in call.var_sets("TRANSCRIPT")]
    assert heard in live  # set over AMI before AudioSocket() returned, and by the transcript AGI
    _, segments = bridge.stored(uuid)
    assert segments and any("[card]" in s.text for s in segments)
    assert not any(FOUR_DIGITS.search(s.text) for s in segments), [s.text for s in segments]
    assert not any(FOUR_DIGITS.search(c.get("Text")) for c in call.captions(uuid))


def test_fastagi_without_the_secret_gets_nothing(pbx, ami, bridge):
    call = place_call(ami, "transcribe-dial", "601", "wait:1^play:conf-getpin^wait:1.5")
    call.wait_hangup(60)
    assert not call.var_sets("AUDIOSOCKET_REGISTER") and not call.var_sets("TRANSCRIPT_STATUS")
    assert "FastAGI: refused 127.0.0.1 (no or a wrong secret)" in bridge.log_text()


def test_no_secret_in_the_start_up_line(pbx, bridge):
    start = next(line for line in bridge.log_text().splitlines() if "starting with" in line)
    for secret in (AGI_SECRET, HOOK_TOKEN, manager_user_setting("transcriber", "secret")):
        assert secret not in bridge.log_text(), secret
    assert "agi_secret_file=" in start
