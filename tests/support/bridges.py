"""Bridges under test: the bridge as audiosocket_bridge.bridge assembles it, on free loopback
ports with SQLite in a test's folder and a FakeEngine (or the real one); a caller for it; and a
good call to run beside bad ones."""
import asyncio
from pathlib import Path
from typing import Optional

import pytest

from audiosocket_bridge.audiosocket.media_gaps import GAP_FILL_MAX_S
from audiosocket_bridge.audiosocket.settings import SessionSettings
from audiosocket_bridge.bridge import Bridge
from audiosocket_bridge.outputs.presence import PresenceTiming
from audiosocket_bridge.outputs.spool import SpoolOptions
from audiosocket_bridge.outputs.webhook_policy import WebhookOptions

from audiosocket_bridge.testing.audiosocket_client import AudioSocketClient
from .fake_engine import FakeEngine

ANY_LOOPBACK_PORT = ("127.0.0.1", 0)


def bridge_under_test(tmp_path: Path, engine=None, *, max_calls: int = 10, metrics: bool = False,
                      shutdown_deadline_s: float = 10.0, webhook: Optional[WebhookOptions] = None,
                      bridge_id: Optional[str] = None, http_access=None, alerts=(),
                      ami=None, storage_url: Optional[str] = None,
                      spool: SpoolOptions = SpoolOptions(),
                      presence: PresenceTiming = PresenceTiming(), **session) -> Bridge:
    """`session` holds SessionSettings fields (idle_timeout_s=..., raw=..., ...). Storage: SQLite in
    `tmp_path` unless `storage_url`; the storage spool in `tmp_path`."""
    return Bridge(FakeEngine() if engine is None else engine,
                  storage_url=storage_url or f"sqlite:///{tmp_path}/calls.db",
                  spool_dir=str(tmp_path), spool=spool, listen=ANY_LOOPBACK_PORT,
                  max_calls=max_calls,
                  session=SessionSettings(shutdown_deadline_s=shutdown_deadline_s, **session),
                  metrics_listen=ANY_LOOPBACK_PORT if metrics else None, webhook=webhook,
                  bridge_id=bridge_id, alerts=alerts, ami=ami, presence=presence,
                  **({"http_access": http_access} if http_access is not None else {}))


def caller(bridge: Bridge, call_uuid: Optional[str] = None) -> AudioSocketClient:
    """An Asterisk-like AudioSocket client for the bridge (connect() it)."""
    return AudioSocketClient(*bridge.address, call_uuid=call_uuid)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def good_call(bridge: Bridge, seconds: float = 2.0, end: str = "hangup") -> str:
    client = await caller(bridge).connect()
    await client.send_silence(seconds / 2, realtime=True)
    await client.send_dtmf("1")
    await client.send_silence(seconds / 2, realtime=True)
    await client.finish(end)
    assert await bridge.live.wait_ended(client.call_uuid, 10)
    return client.call_uuid


def assert_good(bridge: Bridge, call_uuid: str, seconds: float, reason: str, stalls: bool = False) -> None:
    """The call's audio all reached the engine, its DTMF and end were recorded and stored. With
    `stalls`, the event loop may have been held up past GAP_FILL_AFTER_S (a flood of junk on 2
    loaded cores): the session then gave the engine silence for the gap, as it does when media
    stops, and the late audio after it, so the engine may have more than the call sent, never less."""
    stream = bridge.engine.stream(call_uuid)
    if stalls:
        assert seconds - 0.001 <= stream.pushed_s <= seconds + GAP_FILL_MAX_S, (stream.pushed_s, seconds)
    else:
        assert stream.pushed_s == pytest.approx(seconds), (stream.pushed_s, seconds)
    info = bridge.live.get(call_uuid)
    assert info.end_reason == reason and [digit for _, digit in info.dtmf] == ["1"]
    dtmf_at_s = info.dtmf[0][0]
    assert seconds / 2 <= dtmf_at_s <= seconds / 2 + (GAP_FILL_MAX_S if stalls else 0.0)
    stored = bridge.storage.get_call(call_uuid)
    assert stored.end_reason == reason and stored.ended_at is not None
    assert len(bridge.storage.get_segments(call_uuid)) == len(bridge.live.finals(call_uuid)) >= 1
