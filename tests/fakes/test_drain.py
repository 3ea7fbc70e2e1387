"""Draining on SIGTERM: /healthz fails first, new calls are taken during the grace and refused
after it, calls in progress end by themselves; a second signal cuts the wait short."""
import asyncio

import pytest

from tests.support.bridges import bridge_under_test, caller, run
from tests.support.scrape import http_get


async def health(bridge):
    return await http_get(bridge.metrics_server.address, "/healthz")


def test_drain_fails_health_first_then_refuses_new_calls_while_calls_in_progress_end(tmp_path):
    async def scenario():
        async with bridge_under_test(tmp_path, metrics=True) as bridge:
            assert (await health(bridge))[0] == 200
            in_progress = await caller(bridge).connect()
            await in_progress.send_silence(0.5)
            drain = asyncio.create_task(bridge.drain(grace_s=1.0, timeout_s=10.0))
            await asyncio.sleep(0.2)
            status, body = await health(bridge)
            assert status == 503 and "draining" in body
            during_grace = await caller(bridge).connect()  # routed before the check noticed
            await during_grace.send_silence(0.5)
            await during_grace.finish("hangup")
            assert await bridge.live.wait_ended(during_grace.call_uuid, 5)
            await asyncio.sleep(1.0)  # grace over
            with pytest.raises(OSError):
                await caller(bridge).connect()
            assert not drain.done()  # waits for the call in progress
            await in_progress.send_silence(0.5)
            await in_progress.finish("hangup")
            await asyncio.wait_for(drain, 5)
            assert await bridge.live.wait_ended(in_progress.call_uuid, 5)  # and stored
            return [bridge.storage.get_call(c.call_uuid) for c in (in_progress, during_grace)]

    calls = run(scenario())
    assert [c.end_reason for c in calls] == ["hangup", "hangup"]  # nobody was cut off


def test_a_second_signal_ends_the_wait_and_calls_are_flushed(tmp_path):
    async def scenario():
        async with bridge_under_test(tmp_path, metrics=True) as bridge:
            call = await caller(bridge).connect()
            await call.send_silence(0.5)
            interrupt = asyncio.Event()
            drain = asyncio.create_task(bridge.drain(0.1, 300.0, interrupt))
            await asyncio.sleep(0.5)
            interrupt.set()
            await asyncio.wait_for(drain, 2)
        return bridge.live.get(call.call_uuid)  # close() has ended it by now

    ended = run(scenario())
    assert ended.end_reason == "shutdown" and ended.ended_at is not None
