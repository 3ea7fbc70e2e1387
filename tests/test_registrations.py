"""Registrations lifetime: unclaimed TTL, claims, release + linger, with a fake clock."""
from __future__ import annotations

import asyncio
import threading
import uuid as uuid_lib

import pytest

from audiosocket_bridge.registrations import Registrations, CallOptions, Registration

UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
LINGER_S, UNCLAIMED_TTL_S = 300.0, 3600.0


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def directory(clock: FakeClock) -> Registrations:
    return Registrations(linger_s=LINGER_S, unclaimed_ttl_s=UNCLAIMED_TTL_S, clock=clock)


def claim(directory: Registrations, uuid: str = UUID, timeout_s: float = 0.0):
    return asyncio.run(directory.wait_for(uuid, timeout_s))


def register(directory: Registrations, uuid: str = UUID, **fields) -> None:
    directory.register(Registration(uuid, **fields))


def test_defaults_are_five_minutes_linger_and_an_hour_unclaimed():
    directory = Registrations()
    assert (directory.linger_s, directory.unclaimed_ttl_s) == (300.0, 3600.0)


def test_a_registration_no_call_claims_expires_after_the_unclaimed_ttl(directory, clock):
    register(directory, channel="PJSIP/a-1")
    clock.advance(UNCLAIMED_TTL_S - 1)
    assert directory.get(UUID).channel == "PJSIP/a-1" and len(directory) == 1
    clock.advance(1)
    assert directory.get(UUID) is None and len(directory) == 0


def test_a_claimed_registration_is_kept_for_as_long_as_the_call_lasts(directory, clock):
    register(directory, channel="PJSIP/a-1")
    assert claim(directory).channel == "PJSIP/a-1"
    clock.advance(10 * UNCLAIMED_TTL_S)
    assert directory.get(UUID).channel == "PJSIP/a-1"


def test_a_released_registration_lingers_then_is_dropped(directory, clock):
    register(directory, channel="PJSIP/a-1")
    claim(directory)
    clock.advance(50)
    directory.release(UUID)
    clock.advance(LINGER_S - 1)
    assert directory.get(UUID).channel == "PJSIP/a-1"
    clock.advance(1)
    assert directory.get(UUID) is None and len(directory) == 0


def test_a_retry_with_the_same_uuid_within_the_linger_finds_channel_and_options(directory, clock):
    register(directory, channel="PJSIP/a-1", options=CallOptions(language="de", mode="ivr"))
    claim(directory)
    directory.release(UUID)
    clock.advance(LINGER_S - 1)
    again = claim(directory)  # the second AudioSocket(): a new claim cancels the expiry
    assert (again.channel, again.options.language, again.options.mode) == ("PJSIP/a-1", "de", "ivr")
    clock.advance(10 * LINGER_S)
    assert directory.get(UUID) is not None
    directory.release(UUID)
    clock.advance(LINGER_S)
    assert directory.get(UUID) is None


def test_the_registration_stays_until_the_last_of_two_claims_is_released(directory, clock):
    register(directory, channel="PJSIP/a-1")
    claim(directory)
    claim(directory)
    directory.release(UUID)
    clock.advance(10 * LINGER_S)
    assert directory.get(UUID) is not None
    directory.release(UUID)
    clock.advance(LINGER_S)
    assert directory.get(UUID) is None


def test_a_new_registration_cancels_the_linger_and_waits_as_unclaimed(directory, clock):
    register(directory, channel="PJSIP/a-1")
    claim(directory)
    directory.release(UUID)
    clock.advance(200)
    register(directory, channel="PJSIP/a-2")  # e.g. the dialplan announces a retry
    clock.advance(LINGER_S)
    assert directory.get(UUID).channel == "PJSIP/a-2"
    clock.advance(UNCLAIMED_TTL_S - LINGER_S - 1)
    assert directory.get(UUID) is not None
    clock.advance(1)
    assert directory.get(UUID) is None


def test_a_registration_arriving_while_the_call_waits_is_claimed(directory, clock):
    async def scenario():
        waiting = asyncio.create_task(directory.wait_for(UUID, 5.0))
        await asyncio.sleep(0.01)
        threading.Thread(target=register, args=(directory,), kwargs={"channel": "PJSIP/late-1"}).start()
        return await waiting

    assert asyncio.run(scenario()).channel == "PJSIP/late-1"
    clock.advance(10 * UNCLAIMED_TTL_S)
    assert directory.get(UUID) is not None
    directory.release(UUID)
    clock.advance(LINGER_S)
    assert directory.get(UUID) is None


def test_a_claim_that_found_nothing_still_holds_a_late_registration(directory, clock):
    assert claim(directory) is None
    register(directory, channel="PJSIP/very-late-1")
    clock.advance(10 * UNCLAIMED_TTL_S)
    assert directory.get(UUID) is not None
    directory.release(UUID)
    clock.advance(LINGER_S)
    assert len(directory) == 0


def test_release_without_a_claim_does_nothing(directory, clock):
    directory.release(UUID)  # never registered
    register(directory)
    directory.release(UUID)  # registered, never claimed: keeps its unclaimed TTL
    clock.advance(LINGER_S)
    assert directory.get(UUID) is not None
    clock.advance(UNCLAIMED_TTL_S - LINGER_S)
    assert directory.get(UUID) is None


def test_uuid_case_does_not_matter_for_claim_and_release(directory, clock):
    register(directory, UUID.upper())
    claim(directory, UUID)
    directory.release(UUID.upper())
    clock.advance(LINGER_S)
    assert len(directory) == 0


def test_many_calls_leave_nothing_behind_and_the_expiry_heap_stays_bounded(directory, clock):
    for _ in range(2000):
        call = str(uuid_lib.uuid4())
        for _ in range(3):  # AMI and AGI may both register the same call
            register(directory, call, channel="PJSIP/x")
        claim(directory, call)
        directory.release(call)
        clock.advance(1)
    assert len(directory) == LINGER_S - 1  # those released in the last linger_s
    assert len(directory._deadlines) <= 2 * len(directory) + 64
    clock.advance(LINGER_S)
    assert len(directory) == 0


def test_concurrent_registers_from_threads(directory):
    uuids = [str(uuid_lib.uuid4()) for _ in range(400)]

    def worker(chunk: list[str]) -> None:
        for call in chunk:
            register(directory, call)

    threads = [threading.Thread(target=worker, args=(uuids[n::4],)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(directory) == 400 and all(directory.get(call) for call in uuids)
