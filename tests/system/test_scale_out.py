"""Beyond one box, end to end: a real Asterisk 22 running dialplan example 6, Debian's HAProxy
with deploy/haproxy.cfg, two bridge processes started from deploy/bridge1.ini and bridge2.ini
(ports and storage overridden), and one real PostgreSQL.

Shown: calls spread over both bridges; either bridge answers FastAGI for any call; a bridge
drained by SIGTERM gets no new calls while its call in progress ends normally; a bridge killed
with SIGKILL mid-call: what it had finalised is stored, the call goes on on the other bridge, new
calls go there, and the other bridge's own call is not touched; a webhook receiver that is down
for a while still gets every call once. In CI (CI=true) these tests fail
instead of skipping when Asterisk, HAProxy or PostgreSQL cannot be had.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.asterisk_pbx import REPO, Asterisk, AsteriskUnavailable, Installation, manager_user_setting
from tests.support.ami_observer import AmiObserver
from tests.support.bridge_process import BridgeProcess
from tests.support.fake_agi_client import run_agi
from tests.support.haproxy import HAProxy
from tests.support.pbx_calls import (TEST_DIALPLAN, TESTER_USER, observe_as_tester, PlacedCall,
                                     place_call, texts_of, unavailable)
from audiosocket_bridge.testing.ports import free_port
from tests.support.postgres import new_database
from tests.support.webhook_receiver import WebhookReceiver
from whisper.evaluation import english_wer

SHORT_CALL = ("conf-getpin", "vm-goodbye")
SHORT_SCRIPT = "wait:1^play:conf-getpin^wait:1.5^play:vm-goodbye^wait:1.5"
LONG_CALL = ("conf-getpin", "vm-reachoper", "vm-goodbye")
WEBHOOK_SECRET = "webhook-secret"
AGI_SECRET = "agi-secret"
LONG_SCRIPT = "wait:1^play:conf-getpin^wait:4^play:vm-reachoper^wait:1.5^play:vm-goodbye^wait:2"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("scale-out")


@pytest.fixture(scope="module")
def database(postgres_server_url) -> str:
    return new_database(postgres_server_url)


@pytest.fixture(scope="module")
def pbx_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as up:
        yield up.up()


@pytest.fixture(scope="module")
def bridges(workdir, database, pbx_port, receiver) -> Iterator[dict[str, BridgeProcess]]:
    secret_file = workdir / "agi.secret"  # the .ini's path is /etc/asterisk-whisper/agi.secret
    secret_file.write_text(AGI_SECRET)
    webhook = ["--webhook-url", receiver.url, "--webhook-secret", WEBHOOK_SECRET,
               "--agi-secret-file", str(secret_file)]
    # the test's cluster trusts loopback: no password file (the .ini names the deployed one)
    made = {name: BridgeProcess(workdir / name, ami_port=pbx_port, storage_url=database,
                                ami_secret=manager_user_setting("transcriber", "secret"),
                                metrics=True,
                                extra_args=["--config", str(REPO / "deploy" / f"{name}.ini"),
                                            "--storage-password-file=", *webhook])
            for name in ("bridge1", "bridge2")}
    yield made
    for bridge in made.values():
        bridge.stop()


@pytest.fixture(scope="module")
def haproxy(workdir, bridges) -> Iterator[HAProxy]:
    front, agi_front = free_port(), free_port()
    one, two = bridges["bridge1"], bridges["bridge2"]
    proxy = HAProxy(workdir, {
        "bind 127.0.0.1:8300": f"bind 127.0.0.1:{front}",
        "bind 127.0.0.1:4573": f"bind 127.0.0.1:{agi_front}",
        "server bridge1 127.0.0.1:8301 check port 9301": f"server bridge1 {one.transcriber} check port {one.metrics_port}",
        "server bridge2 127.0.0.1:8302 check port 9302": f"server bridge2 {two.transcriber} check port {two.metrics_port}",
        "server bridge1 127.0.0.1:4574 check port 9301": f"server bridge1 127.0.0.1:{one.agi_port} check port {one.metrics_port}",
        "server bridge2 127.0.0.1:4575 check port 9302": f"server bridge2 127.0.0.1:{two.agi_port} check port {two.metrics_port}",
    }, ports=(front, agi_front))
    proxy.front, proxy.agi_front = front, agi_front
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def pbx(workdir, pbx_port, bridges, haproxy) -> Iterator[Asterisk]:
    try:
        installation = Installation.find()
    except AsteriskUnavailable as error:
        unavailable(error)
    asterisk = Asterisk(installation, workdir / "asterisk", ami_port=pbx_port,
                        globals={"TRANSCRIBER": f"127.0.0.1:{haproxy.front}",
                                 "FASTAGI": f"agi://127.0.0.1:{haproxy.agi_front}",
                                 "AUDIOSOCKET_AGI_SECRET": AGI_SECRET},
                        extra_dialplan=TEST_DIALPLAN, extra_manager=TESTER_USER)
    asterisk.start()
    for bridge in bridges.values():
        bridge.start()
    haproxy.start()
    yield asterisk
    asterisk.stop()


@pytest.fixture(scope="module")
def ami(pbx) -> Iterator[AmiObserver]:
    observer = observe_as_tester(pbx)
    yield observer
    observer.close()


def query(database: str, sql: str, *params):
    import psycopg

    with psycopg.connect(database) as connection:
        return connection.execute(sql, params).fetchall()


def owner_of(database: str, uuid: str, timeout_s: float = 20.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = query(database, "SELECT bridge_id FROM calls WHERE uuid = %s", uuid)
        if rows and rows[0][0]:
            return rows[0][0]
        time.sleep(0.1)
    raise AssertionError(f"call {uuid} not in PostgreSQL within {timeout_s:g} s")


def bridge_named(bridges: dict[str, BridgeProcess], bridge_id: str) -> str:
    """The fixture name of the bridge whose default id (HOSTNAME:PORT) is `bridge_id`."""
    return next(name for name, b in bridges.items()
                if bridge_id.endswith(f":{b.audiosocket_port}"))


def call_uuid(call: PlacedCall) -> str:
    return call.wait_var("ID", 20).get("Value")


def finished(call: PlacedCall) -> str:
    """The transcript the h extension fetched through HAProxy's FastAGI front."""
    assert call.wait_var("TRANSCRIPT_STATUS", 90).get("Value") == "OK"
    return call.var_sets("TRANSCRIPT")[-1].get("Value")


def stream_starts(bridge: BridgeProcess, uuid: str) -> int:
    return bridge.log_text().count(f"call {uuid} started")


async def agi_transcript(bridge: BridgeProcess, uuid: str) -> dict[str, str]:
    done = await run_agi("127.0.0.1", bridge.agi_port, f"agi://127.0.0.1/transcript?uuid={uuid}",
                         preset={"AUDIOSOCKET_AGI_SECRET": AGI_SECRET})  # as [globals] has it
    return done.variables


def test_calls_spread_over_both_bridges_and_either_answers_for_any_call(pbx, ami, bridges, database):
    calls = [place_call(ami, "transcribe-ha", "606", SHORT_SCRIPT) for _ in range(4)]
    uuids = [call_uuid(call) for call in calls]
    texts = [finished(call) for call in calls]
    owners = {uuid: owner_of(database, uuid) for uuid in uuids}
    assert len(set(owners.values())) == 2, owners  # leastconn used both bridges
    for uuid, text in zip(uuids, texts):
        assert english_wer([texts_of(*SHORT_CALL)], [text]) < 0.3, text
        answers = [asyncio.run(agi_transcript(bridge, uuid)) for bridge in bridges.values()]
        assert [a["TRANSCRIPT_STATUS"] for a in answers] == ["OK", "OK"]
        assert answers[0]["TRANSCRIPT"] == answers[1]["TRANSCRIPT"] == text
    assert "Reached timeout" not in pbx.log_text()


def test_a_draining_bridge_takes_no_new_calls_and_finishes_its_own(pbx, ami, bridges, database,
                                                                   haproxy):
    in_progress = place_call(ami, "transcribe-ha", "606", LONG_SCRIPT)
    uuid = call_uuid(in_progress)
    draining_name = bridge_named(bridges, owner_of(database, uuid))
    draining = bridges[draining_name]
    time.sleep(2.0)
    mark = len(haproxy.log_text())
    draining.terminate()
    haproxy.wait_for_log(f"Server bridges/{draining_name} is DOWN", mark)  # /healthz: 503
    time.sleep(1.0)  # within drain-grace (deploy/*.ini, 3 s): the bridge still accepts
    later = [place_call(ami, "transcribe-ha", "606", SHORT_SCRIPT) for _ in range(2)]
    for call in later:
        assert bridge_named(bridges, owner_of(database, call_uuid(call))) != draining_name
    text = finished(in_progress)
    assert english_wer([texts_of(*LONG_CALL)], [text]) < 0.3, text
    # AudioSocket() closes the socket when the caller hangs up (no hangup frame): "closed", where
    # a bridge that cut the call short would have written "shutdown"
    assert query(database, "SELECT end_reason FROM calls WHERE uuid = %s", uuid) == [("closed",)]
    assert stream_starts(draining, uuid) == 1  # not cut off and moved: it ended on its bridge
    draining.process.wait(30)  # its last call over, it exits by itself
    assert draining.process.returncode == 0
    for call in later:
        finished(call)
    mark = len(haproxy.log_text())
    draining.start()  # back for the next test
    haproxy.wait_for_log(f"Server bridges/{draining_name} is UP", mark)


def test_a_bridge_killed_mid_call_loses_at_most_its_open_utterance(pbx, ami, bridges, database):
    victim_call = place_call(ami, "transcribe-ha", "606", LONG_SCRIPT)
    victim_uuid = call_uuid(victim_call)
    victim = bridges[bridge_named(bridges, owner_of(database, victim_uuid))]
    bystander_call = place_call(ami, "transcribe-ha", "606", LONG_SCRIPT)
    bystander_uuid = call_uuid(bystander_call)
    survivor = bridges[bridge_named(bridges, owner_of(database, bystander_uuid))]
    assert survivor is not victim  # leastconn: the other bridge had no call
    deadline = time.monotonic() + 30
    while not query(database, "SELECT 1 FROM segments WHERE uuid = %s", victim_uuid):
        assert time.monotonic() < deadline, "no final of the first prompt stored"
        time.sleep(0.1)
    before = query(database, "SELECT segment_index, text FROM segments WHERE uuid = %s "
                   "ORDER BY segment_index", victim_uuid)
    victim.kill()

    after_kill = place_call(ami, "transcribe-ha", "606", SHORT_SCRIPT)
    victim_text, bystander_text = finished(victim_call), finished(bystander_call)
    stored = query(database, "SELECT segment_index, text FROM segments WHERE uuid = %s "
                   "ORDER BY segment_index", victim_uuid)
    assert stored[:len(before)] == before  # what the dead bridge had finalised is kept
    row = query(database, "SELECT bridge_id, end_reason FROM calls WHERE uuid = %s", victim_uuid)
    assert bridge_named(bridges, row[0][0]) == bridge_named(bridges, owner_of(database, bystander_uuid))
    assert row[0][1] == "closed"  # the call went on on the survivor until the caller hung up
    assert "goodbye" in victim_text.lower(), victim_text  # spoken after the failover
    assert stream_starts(survivor, victim_uuid) == 1
    assert ami.matching(lambda m: m.event == "VarSet" and m.get("Variable") == "STREAMS"
                        and m.get("Value") == "2" and m.get("Channel") == victim_call.channel,
                        victim_call.mark)
    # the survivor's own call: one stream, whole transcript
    assert stream_starts(survivor, bystander_uuid) == 1
    assert english_wer([texts_of(*LONG_CALL)], [bystander_text]) < 0.3, bystander_text
    # new calls go to the survivor
    assert bridge_named(bridges, owner_of(database, call_uuid(after_kill))) == bridge_named(
        bridges, owner_of(database, bystander_uuid))
    assert english_wer([texts_of(*SHORT_CALL)], [finished(after_kill)]) < 0.3


def test_a_webhook_receiver_down_for_a_while_gets_every_call_once(pbx, ami, bridges, database,
                                                                   receiver):
    receiver.down()
    calls = [place_call(ami, "transcribe-ha", "606", SHORT_SCRIPT) for _ in range(2)]
    uuids = [call_uuid(call) for call in calls]
    for call in calls:
        finished(call)
    deadline = time.monotonic() + 30
    while query(database, "SELECT count(*) FROM webhook_deliveries WHERE uuid = ANY(%s) "
                "AND attempts > 0 AND state = 'pending'", uuids) != [(2,)]:
        assert time.monotonic() < deadline, "the POSTs of the calls were not tried while it was down"
        time.sleep(0.2)
    receiver.up()
    ended = {uuid for (uuid,) in query(database, "SELECT uuid FROM calls WHERE ended_at IS NOT NULL")}
    assert set(uuids) <= ended and len(ended) >= 10  # and every call of the tests before
    assert receiver.wait_accepted(len(ended), 30), len(receiver.accepted)
    time.sleep(2.0)  # no second POST of any call comes later
    keys = [r.headers["Idempotency-Key"] for r in receiver.accepted]
    assert len(keys) == len(set(keys)) and set(keys) == ended
    for received in receiver.accepted:
        document = received.document
        assert document["uuid"] == received.headers["X-Transcript-Call"] == received.headers["Idempotency-Key"]
        assert document["ended_at"] and document["text"], document
        expected = hmac.new(WEBHOOK_SECRET.encode(), received.body, hashlib.sha256).hexdigest()
        assert received.headers["X-Transcript-Signature"] == f"sha256={expected}"
