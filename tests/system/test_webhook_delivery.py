"""The post-call webhook against a real HTTP receiver: the POST itself (body, headers, signature,
answers that are retried or not), and whole bridges taking real AudioSocket calls while the
receiver is down, coming back, and across a restart of the bridge."""
import asyncio
import hashlib
import hmac
import json
import socket
import threading
import time
from datetime import datetime, timedelta, timezone

from audiosocket_bridge.bridge import Bridge
from audiosocket_bridge.outputs.export import export_call
from audiosocket_bridge.outputs.presence import LOST_REASON
from audiosocket_bridge.outputs.storage import open_storage
from audiosocket_bridge.outputs.webhook import WebhookWorker
from audiosocket_bridge.outputs.webhook_policy import Backoff, PostResult, WebhookOptions
from audiosocket_bridge.outputs.webhook_queue import WebhookQueue
from audiosocket_bridge.outputs.webhook_sender import USER_AGENT, post, request_headers
from tests.support.bridges import ANY_LOOPBACK_PORT, bridge_under_test, good_call, run
from tests.support.builders import call_info, event
from tests.support.fake_engine import FakeEngine
from tests.support.webhook_receiver import SECRET, Received, WebhookReceiver, fast_options


def check_delivery(received: Received, storage) -> None:
    """The body is the call's JSON export; the headers name the call and sign the body."""
    uuid = received.document["uuid"]
    assert received.body.decode("utf-8") == export_call(storage, uuid, "json")
    assert received.path == "/hooks/transcripts"
    headers = {k.lower(): v for k, v in received.headers.items()}
    assert headers["content-type"] == "application/json"
    assert headers["idempotency-key"] == headers["x-transcript-call"] == uuid
    assert headers["user-agent"] == USER_AGENT
    expected = hmac.new(SECRET.encode(), received.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-transcript-signature"], "sha256=" + expected)


def uuids_of(requests: list[Received]) -> list[str]:
    return sorted(r.document["uuid"] for r in requests)


# ---------------------------------------------------------------- one POST

def test_post_gets_the_status_and_retry_after(tmp_path):
    with WebhookReceiver().up() as receiver:
        body = b'{"uuid": "x"}'
        assert post(receiver.url, body, request_headers("x", body, ""), 2.0).status == 200
        receiver.answer(503, retry_after="7")
        busy = post(receiver.url, body, request_headers("x", body, ""), 2.0)
        assert (busy.status, busy.retry_after) == (503, "7")
        receiver.answer(302)  # not followed: a redirected POST would become a GET
        assert post(receiver.url, body, {}, 2.0).status == 302
        assert "x-transcript-signature" not in {k.lower() for k in receiver.requests[0].headers}
    refused = post(receiver.url, body, {}, 2.0)
    assert refused.status is None and "refused" in refused.error.lower()


def test_post_to_a_receiver_that_never_answers_times_out():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        started = time.monotonic()
        result = post("http://127.0.0.1:%d/" % silent.getsockname()[1], b"{}", {}, 0.5)
    assert result.status is None and result.error
    assert time.monotonic() - started < 3.0


# ---------------------------------------------------------------- the worker on a queue

def store_ended_call(storage, uuid: str, text: str) -> None:
    call = call_info(uuid)
    storage.record_call_start(call)
    storage.record_final(call, event("final", 0, text, uuid=uuid))
    call.ended_at, call.end_reason = call.started_at, "hangup"
    storage.record_call_end(call)


async def deliver_for(storage, options: WebhookOptions, seconds: float) -> WebhookWorker:
    worker = WebhookWorker(storage, options)
    worker.start()
    await asyncio.sleep(seconds)
    await worker.close()
    return worker


def test_a_permanent_error_is_not_retried_and_a_retry_after_is_honoured(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/calls.db", bridge_id="a")
    uuid = "0f8fad5b-d9cb-469f-a165-70867728950e"
    try:
        store_ended_call(storage, uuid, " Hello.")
        with WebhookReceiver().up() as receiver:
            receiver.answer(404)
            worker = run(deliver_for(storage, fast_options(receiver.url), 0.8))
            assert len(receiver.requests) == 1 and worker.failed == 1
            delivery = worker.queue.get(uuid)
            assert (delivery.state, delivery.attempts) == ("failed", 1)
            assert delivery.last_error.startswith("HTTP 404")
            other = fast_options(receiver.url + "?second")  # queued by the worker's reconcile
            receiver.answer(503, retry_after="1")
            threading.Timer(0.3, receiver.answer, (200,)).start()
            worker = run(deliver_for(storage, other, 1.8))
        busy, ok = [r for r in receiver.requests if "second" in r.path]
        assert (busy.status, ok.status) == (503, 200)
        assert ok.at_s - busy.at_s >= 0.95  # not the 0.05 s of the backoff: the 1 s it asked
        assert worker.queue.get(uuid).state == "delivered"
        assert (worker.delivered, worker.retries) == (1, 1)
    finally:
        storage.close()


class ServerErrors:
    """A sender (no sockets) whose receiver always answers 500, and a clock that moves 5 minutes
    at each reading: the worker reads it to claim, to judge an answer and to write it down."""

    def __init__(self, start: datetime) -> None:
        self.now, self.tries = start, 0

    def clock(self) -> datetime:
        self.now += timedelta(minutes=5)
        return self.now - timedelta(minutes=5)

    def __call__(self, url: str, body: bytes, headers: dict, timeout_s: float) -> PostResult:
        self.tries += 1
        return PostResult(500, error="HTTP 500 Internal Server Error")


def test_a_delivery_failing_past_its_max_age_is_given_up(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/calls.db", bridge_id="a")
    uuid = "0f8fad5b-d9cb-469f-a165-70867728950e"
    receiver = ServerErrors(datetime.now(timezone.utc))
    options = fast_options("http://receiver.example/", max_age_s=3600.0, reconcile_s=3600.0,
                           backoff=Backoff(base_s=60.0, cap_s=300.0))
    try:
        store_ended_call(storage, uuid, " Hello.")

        async def scenario():
            worker = WebhookWorker(storage, options, sender=receiver, clock=receiver.clock,
                                   draw=lambda: 1.0)
            worker.queue.enqueue(uuid, receiver.now)
            worker.start()
            while worker.failed == 0:
                await asyncio.sleep(0.02)
            await worker.close()
            return worker

        worker = run(scenario())
        delivery = worker.queue.get(uuid)
    finally:
        storage.close()
    # judged at 10, 25, 40, 55 minutes (waits of 1, 2, 4, 5 minutes), then at 70: past the hour
    assert receiver.tries == delivery.attempts == 5
    assert delivery.state == "failed" and "gave up after 5 attempt(s)" in delivery.last_error
    assert (worker.retries, worker.failed, worker.delivered) == (4, 1, 0)


# ---------------------------------------------------------------- whole bridges

async def calls(bridge, count: int) -> list[str]:
    return list(await asyncio.gather(*(good_call(bridge, seconds=1.0) for _ in range(count))))


async def until_delivered(bridge, uuids: list[str], timeout_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while any(getattr(bridge.webhook.queue.get(u), "state", None) != "delivered" for u in uuids):
        assert loop.time() < deadline, "not delivered in time"
        await asyncio.sleep(0.05)


def test_calls_ended_while_the_receiver_is_down_each_arrive_once_when_it_is_back(tmp_path):
    receiver = WebhookReceiver()  # not listening: connection refused

    async def scenario():
        async with bridge_under_test(tmp_path, webhook=fast_options(receiver.url)) as bridge:
            uuids = await calls(bridge, 3)
            await asyncio.sleep(0.5)  # several refused tries each
            assert all(bridge.webhook.queue.get(u).attempts >= 2 for u in uuids)
            receiver.answer(503).up()  # up, but not ready yet
            await asyncio.sleep(0.4)
            receiver.answer(200)
            await until_delivered(bridge, uuids)
            await asyncio.sleep(0.5)  # nothing more comes
            for received in receiver.accepted:
                check_delivery(received, bridge.storage)
            return uuids, bridge.webhook

    try:
        uuids, worker = run(scenario())
    finally:
        receiver.down()
    assert uuids_of(receiver.accepted) == sorted(uuids)
    assert any(r.status == 503 for r in receiver.requests)
    assert worker.delivered == 3 and worker.failed == 0 and worker.pending == 0
    assert all(r.document["end_reason"] == "hangup" and r.document["dtmf"] == [
        {"time_s": 0.5, "digit": "1"}] for r in receiver.accepted)


def test_calls_queued_before_a_bridge_restart_are_delivered_after_it(tmp_path):
    receiver = WebhookReceiver()
    options = fast_options(receiver.url)

    async def before_restart():
        async with bridge_under_test(tmp_path, webhook=options) as bridge:
            return await calls(bridge, 2)

    async def after_restart(uuids):
        async with bridge_under_test(tmp_path, webhook=options) as bridge:
            await until_delivered(bridge, uuids)
            await asyncio.sleep(0.3)
            for received in receiver.accepted:
                check_delivery(received, bridge.storage)

    uuids = run(before_restart())
    assert receiver.requests == []
    receiver.up()
    try:
        run(after_restart(uuids))
    finally:
        receiver.down()
    assert uuids_of(receiver.accepted) == sorted(uuids)


def test_a_call_its_crashed_bridge_left_open_is_delivered_as_lost(tmp_path):
    crashed = open_storage(f"sqlite:///{tmp_path}/calls.db", bridge_id="pbx1")
    call = call_info("7c9e6679-7425-40de-944b-e07fc1f90ae7")
    crashed.record_call_start(call)  # the bridge is killed mid-call
    crashed.record_final(call, event("final", 0, " Last words.", uuid=call.uuid))
    crashed.close()

    async def restart():
        with WebhookReceiver().up() as receiver:
            async with bridge_under_test(tmp_path, webhook=fast_options(receiver.url),
                                         bridge_id="pbx1") as bridge:
                await until_delivered(bridge, [call.uuid])
                check_delivery(receiver.accepted[0], bridge.storage)
            return receiver.accepted

    [received] = run(restart())
    assert received.document["end_reason"] == LOST_REASON
    assert received.document["text"] == "Last words."
    assert json.loads(received.body)["uuid"] == call.uuid


def test_two_bridges_on_one_postgresql_deliver_every_call_once(tmp_path, postgres_url):
    receiver = WebhookReceiver()
    options = fast_options(receiver.url)

    def bridge(bridge_id: str) -> Bridge:
        return Bridge(FakeEngine(), storage_url=postgres_url, listen=ANY_LOOPBACK_PORT,
                      bridge_id=bridge_id, webhook=options)

    async def scenario():
        async with bridge("a") as a, bridge("b") as b:
            uuids = [*await calls(a, 3), *await calls(b, 3)]
            await asyncio.sleep(0.3)
            receiver.up()
            await until_delivered(a, uuids)
            await asyncio.sleep(0.5)  # both workers keep looking: nothing is sent again
            return uuids, a.webhook.delivered + b.webhook.delivered

    try:
        uuids, delivered = run(scenario())
    finally:
        receiver.down()
    assert uuids_of(receiver.accepted) == sorted(uuids) and delivered == 6


def test_a_post_in_flight_at_shutdown_is_finished_and_recorded(tmp_path):
    with WebhookReceiver().answer(200, delay_s=0.8).up() as receiver:

        async def scenario():
            bridge = bridge_under_test(tmp_path, webhook=fast_options(receiver.url))
            async with bridge:
                [uuid] = await calls(bridge, 1)
                await asyncio.sleep(0.2)  # the POST is under way
            return uuid, bridge.webhook.delivered

        uuid, delivered = run(scenario())
        assert delivered == 1 and uuids_of(receiver.accepted) == [uuid]
    reopened = open_storage(f"sqlite:///{tmp_path}/calls.db")
    try:
        assert WebhookQueue(reopened, receiver.url, 40.0).get(uuid).state == "delivered"
    finally:
        reopened.close()
