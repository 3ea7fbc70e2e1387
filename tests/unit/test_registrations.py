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
def registrations(clock: FakeClock) -> Registrations:
    return Registrations(linger_s=LINGER_S, unclaimed_ttl_s=UNCLAIMED_TTL_S, clock=clock)


def claim(registrations: Registrations, uuid: str = UUID, timeout_s: float = 0.0):
    return asyncio.run(registrations.wait_for(uuid, timeout_s))


def register(registrations: Registrations, uuid: str = UUID, **fields) -> None:
    registrations.register(Registration(uuid, **fields))


def assert_held_then_lingers(registrations: Registrations, clock: FakeClock, held_s: float) -> None:
    """Still there after `held_s` under a claim; released, gone one linger later."""
    clock.advance(held_s)
    assert registrations.get(UUID) is not None
    registrations.release(UUID)
    clock.advance(LINGER_S)
    assert registrations.get(UUID) is None


def test_defaults_are_five_minutes_linger_and_an_hour_unclaimed():
    registrations = Registrations()
    assert (registrations.linger_s, registrations.unclaimed_ttl_s) == (300.0, 3600.0)


def test_a_registration_no_call_claims_expires_after_the_unclaimed_ttl(registrations, clock):
    register(registrations, channel="PJSIP/a-1")
    clock.advance(UNCLAIMED_TTL_S - 1)
    assert registrations.get(UUID).channel == "PJSIP/a-1" and len(registrations) == 1
    clock.advance(1)
    assert registrations.get(UUID) is None and len(registrations) == 0


def test_a_claimed_registration_is_kept_for_as_long_as_the_call_lasts(registrations, clock):
    register(registrations, channel="PJSIP/a-1")
    assert claim(registrations).channel == "PJSIP/a-1"
    clock.advance(10 * UNCLAIMED_TTL_S)
    assert registrations.get(UUID).channel == "PJSIP/a-1"


def test_a_released_registration_lingers_then_is_dropped(registrations, clock):
    register(registrations, channel="PJSIP/a-1")
    claim(registrations)
    clock.advance(50)
    registrations.release(UUID)
    clock.advance(LINGER_S - 1)
    assert registrations.get(UUID).channel == "PJSIP/a-1"
    clock.advance(1)
    assert registrations.get(UUID) is None and len(registrations) == 0


def test_a_retry_with_the_same_uuid_within_the_linger_finds_channel_and_options(registrations, clock):
    register(registrations, channel="PJSIP/a-1", options=CallOptions(language="de", mode="ivr"))
    claim(registrations)
    registrations.release(UUID)
    clock.advance(LINGER_S - 1)
    again = claim(registrations)  # the second AudioSocket(): a new claim cancels the expiry
    assert (again.channel, again.options.language, again.options.mode) == ("PJSIP/a-1", "de", "ivr")
    assert_held_then_lingers(registrations, clock, 10 * LINGER_S)


def test_the_registration_stays_until_the_last_of_two_claims_is_released(registrations, clock):
    register(registrations, channel="PJSIP/a-1")
    claim(registrations)
    claim(registrations)
    registrations.release(UUID)
    assert_held_then_lingers(registrations, clock, 10 * LINGER_S)


def test_a_new_registration_cancels_the_linger_and_waits_as_unclaimed(registrations, clock):
    register(registrations, channel="PJSIP/a-1")
    claim(registrations)
    registrations.release(UUID)
    clock.advance(200)
    register(registrations, channel="PJSIP/a-2")  # e.g. the dialplan announces a retry
    clock.advance(LINGER_S)
    assert registrations.get(UUID).channel == "PJSIP/a-2"
    clock.advance(UNCLAIMED_TTL_S - LINGER_S - 1)
    assert registrations.get(UUID) is not None
    clock.advance(1)
    assert registrations.get(UUID) is None


def test_a_registration_arriving_while_the_call_waits_is_claimed(registrations, clock):
    async def scenario():
        waiting = asyncio.create_task(registrations.wait_for(UUID, 5.0))
        await asyncio.sleep(0.01)
        threading.Thread(target=register, args=(registrations,),
                         kwargs={"channel": "PJSIP/late-1"}).start()
        return await waiting

    assert asyncio.run(scenario()).channel == "PJSIP/late-1"
    assert_held_then_lingers(registrations, clock, 10 * UNCLAIMED_TTL_S)


def test_a_claim_that_found_nothing_still_holds_a_late_registration(registrations, clock):
    assert claim(registrations) is None
    register(registrations, channel="PJSIP/very-late-1")
    assert_held_then_lingers(registrations, clock, 10 * UNCLAIMED_TTL_S)
    assert len(registrations) == 0


def test_release_without_a_claim_does_nothing(registrations, clock):
    registrations.release(UUID)  # never registered
    register(registrations)
    registrations.release(UUID)  # registered, never claimed: keeps its unclaimed TTL
    clock.advance(LINGER_S)
    assert registrations.get(UUID) is not None
    clock.advance(UNCLAIMED_TTL_S - LINGER_S)
    assert registrations.get(UUID) is None


def test_uuid_case_does_not_matter_for_claim_and_release(registrations, clock):
    register(registrations, UUID.upper())
    claim(registrations, UUID)
    registrations.release(UUID.upper())
    clock.advance(LINGER_S)
    assert len(registrations) == 0


def test_many_calls_leave_nothing_behind_and_the_expiry_heap_stays_bounded(registrations, clock):
    for _ in range(2000):
        call = str(uuid_lib.uuid4())
        for _ in range(3):  # AMI and AGI may both register the same call
            register(registrations, call, channel="PJSIP/x")
        claim(registrations, call)
        registrations.release(call)
        clock.advance(1)
    assert len(registrations) == LINGER_S - 1  # those released in the last linger_s
    assert len(registrations._deadlines) <= 2 * len(registrations) + 64
    clock.advance(LINGER_S)
    assert len(registrations) == 0


def test_concurrent_registers_from_threads(registrations):
    uuids = [str(uuid_lib.uuid4()) for _ in range(400)]

    def worker(chunk: list[str]) -> None:
        for call in chunk:
            register(registrations, call)

    threads = [threading.Thread(target=worker, args=(uuids[n::4],)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(registrations) == 400 and all(registrations.get(call) for call in uuids)
