"""The webhook's queue on SQLite and on a real PostgreSQL shared by several bridges: queued once,
claimed by one bridge at a time, reclaimed when a lease expires, kept across restarts."""
import threading
import uuid as uuid_lib
from datetime import datetime, timedelta, timezone

from audiosocket_bridge.outputs.presence import LOST_REASON
from audiosocket_bridge.outputs.storage import open_storage
from audiosocket_bridge.outputs.webhook_policy import DELIVERED, FAILED, RETRY, Verdict
from audiosocket_bridge.outputs.webhook_queue import WebhookQueue
from tests.support.builders import call_info
from tests.support.storages import bridges_on

T0 = datetime(2026, 12, 1, 9, 0, 0, tzinfo=timezone.utc)
URL = "http://receiver.example/hook"
LEASE_S = 40.0


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ended_call(storage, ended_at: datetime = T0, reason: str = "hangup") -> str:
    call = call_info(str(uuid_lib.uuid4()), started_at=ended_at - timedelta(seconds=30))
    storage.record_call_start(call)
    call.ended_at, call.end_reason = ended_at, reason
    storage.record_call_end(call)
    return call.uuid


def queue(storage, url: str = URL) -> WebhookQueue:
    return WebhookQueue(storage, url, LEASE_S)


def test_a_call_queued_twice_is_one_delivery(database_url):
    with bridges_on(database_url, "a", "b") as (a, b):
        uuid = ended_call(a)
        queue(a).enqueue(uuid, T0)
        queue(b).enqueue(uuid, at(5))  # another bridge, later: nothing changes
        queue(a).enqueue_ended_calls(at(6), at(-3600))
        assert queue(a).pending_count() == 1
        delivery = queue(b).get(uuid)
        assert (delivery.state, delivery.attempts, delivery.created_at) == ("pending", 0, T0)
        assert queue(a, "http://other.example/").get(uuid) is None


def test_claimed_by_one_bridge_not_by_another_until_its_lease_expires(database_url):
    with bridges_on(database_url, "a", "b") as (a, b):
        uuid = ended_call(a)
        queue(a).enqueue(uuid, T0)
        [claimed] = queue(a).claim(at(1), 10)
        assert (claimed.uuid, claimed.attempts, claimed.created_at) == (uuid, 0, T0)
        assert queue(b).claim(at(2), 10) == [] and queue(a).claim(at(2), 10) == []
        [again] = queue(b).claim(at(1 + LEASE_S + 1), 10)  # `a` died mid-POST
        assert again.uuid == uuid and again.lease != claimed.lease
        assert not queue(a).finish(claimed, Verdict(DELIVERED), at(50))  # too late: b's now
        assert queue(b).finish(again, Verdict(DELIVERED), at(51))
        delivered = queue(a).get(uuid)
        assert (delivered.state, delivered.attempts, delivered.delivered_at) == (
            "delivered", 1, at(51))
        assert delivered.lease_owner is None and queue(a).claim(at(1000), 10) == []


def test_a_retry_waits_its_delay_and_a_failure_is_final(database_url):
    with bridges_on(database_url, "a") as (a,):
        retried, failed = ended_call(a), ended_call(a)
        for uuid in (retried, failed):
            queue(a).enqueue(uuid, T0)
        claims = {c.uuid: c for c in queue(a).claim(at(1), 10)}
        assert queue(a).finish(claims[retried], Verdict(RETRY, 30.0, "HTTP 503"), at(2))
        assert queue(a).finish(claims[failed], Verdict(FAILED, error="HTTP 404"), at(2))
        assert queue(a).claim(at(31), 10) == []
        [later] = queue(a).claim(at(32), 10)
        assert (later.uuid, later.attempts) == (retried, 1)
        gone = queue(a).get(failed)
        assert (gone.state, gone.last_error, gone.attempts) == ("failed", "HTTP 404", 1)
        assert queue(a).get(retried).last_error == "HTTP 503"
        assert queue(a).pending_count() == 1


def test_two_bridges_claiming_at_once_get_disjoint_deliveries(database_url):
    with bridges_on(database_url, "a", "b") as (a, b):
        uuids = [ended_call(a) for _ in range(24)]
        for uuid in uuids:
            queue(a).enqueue(uuid, T0)
        claimed = {"a": [], "b": []}
        barrier = threading.Barrier(2)

        def claim_all(name: str, storage) -> None:
            barrier.wait()
            while batch := queue(storage).claim(at(1), 3):
                claimed[name] += [c.uuid for c in batch]

        threads = [threading.Thread(target=claim_all, args=item) for item in
                   (("a", a), ("b", b))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(claimed["a"] + claimed["b"]) == sorted(uuids)  # each exactly once
        assert not set(claimed["a"]) & set(claimed["b"])


def test_a_restarted_bridge_resumes_its_queue(tmp_path):
    url = f"sqlite:///{tmp_path}/calls.db"
    first = open_storage(url, bridge_id="a")
    in_flight, waiting = ended_call(first), ended_call(first)
    queue(first).enqueue(in_flight, T0)
    queue(first).enqueue(waiting, at(0.5))
    [claimed] = queue(first).claim(at(1), 1)
    assert claimed.uuid == in_flight  # oldest first; then the bridge is killed mid-POST
    first.close()
    restarted = open_storage(url, bridge_id="a")
    try:
        assert queue(restarted).pending_count() == 2
        assert [c.uuid for c in queue(restarted).claim(at(2), 10)] == [waiting]
        assert [c.uuid for c in queue(restarted).claim(at(2 + LEASE_S), 10)] == [in_flight]
    finally:
        restarted.close()


def test_calls_ended_by_the_sweep_are_queued_once_by_whichever_bridge_looks(database_url):
    with bridges_on(database_url, "dead", "a", "b") as (dead, a, b):
        dead.record_bridge_start("10.0.0.1:8300", T0)
        live = call_info(str(uuid_lib.uuid4()), started_at=T0)
        dead.record_call_start(live)  # then `dead` stops beating
        old = ended_call(a, ended_at=at(-7200))  # ended long before the webhook looks back
        a.end_calls_of_gone_bridges(at(20), at(10), LOST_REASON)
        assert a.get_call(live.uuid).end_reason == LOST_REASON
        barrier = threading.Barrier(2)

        def reconcile(storage) -> None:
            barrier.wait()
            queue(storage).enqueue_ended_calls(at(21), at(21 - 3600))

        threads = [threading.Thread(target=reconcile, args=(s,)) for s in (a, b)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert queue(a).get(live.uuid).state == "pending"
        assert queue(a).get(old) is None
        assert queue(b).pending_count() == 1


def test_rows_of_another_url_are_left_to_the_bridges_of_that_url(database_url):
    with bridges_on(database_url, "a") as (a,):
        uuid = ended_call(a)
        queue(a, "http://other.example/").enqueue(uuid, T0)
        assert queue(a).claim(at(1), 10) == [] and queue(a).pending_count() == 0
        assert [c.uuid for c in queue(a, "http://other.example/").claim(at(1), 10)] == [uuid]
