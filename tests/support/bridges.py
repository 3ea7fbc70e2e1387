"""Bridges under test: a started server on a free port with a FakeEngine (or the real one),
LiveCalls and SQLite, optionally with metrics; and a good call to run beside bad ones."""
import asyncio

import pytest

from audiosocket_bridge.audiosocket.server import BridgeServer
from audiosocket_bridge.audiosocket.settings import SessionSettings
from audiosocket_bridge.outputs.live import LiveCalls
from audiosocket_bridge.outputs.metrics import BridgeMetrics, MetricsServer
from audiosocket_bridge.outputs.sinks import SinkGroup, StorageSink
from audiosocket_bridge.outputs.storage import open_storage
from audiosocket_bridge.registrations import Registrations

from .audiosocket_client import AudioSocketClient
from .fake_engine import FakeEngine


class Bridge:
    """A started server on a free port with a FakeEngine, LiveCalls and SQLite."""

    def __init__(self, tmp_path, engine=None, directory=None, **session_kw):
        max_calls = session_kw.pop("max_calls", 10)
        self.engine = engine or FakeEngine()
        self.live = LiveCalls()
        self.storage = open_storage(f"sqlite:///{tmp_path}/calls.db")
        self.sinks = SinkGroup([StorageSink(self.storage), self.live])
        self.server = BridgeServer(self.engine, self.sinks, Registrations() if directory is None else directory,
                                   SessionSettings(**session_kw), port=0, max_calls=max_calls)

    async def __aenter__(self):
        await self.server.start()
        return self

    async def __aexit__(self, *exc):
        await self.server.close(10)
        await self.sinks.close()

    def client(self, call_uuid=None) -> AudioSocketClient:
        return AudioSocketClient(*self.server.address, call_uuid=call_uuid)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def good_call(bridge: Bridge, seconds: float = 2.0, end: str = "hangup") -> str:
    client = await bridge.client().connect()
    await client.send_silence(seconds / 2, realtime=True)
    await client.send_dtmf("1")
    await client.send_silence(seconds / 2, realtime=True)
    await client.finish(end)
    assert await bridge.live.wait_ended(client.call_uuid, 10)
    return client.call_uuid


def assert_good(bridge: Bridge, call_uuid: str, seconds: float, reason: str) -> None:
    stream = bridge.engine.stream(call_uuid)
    assert stream.pushed_s == pytest.approx(seconds)
    info = bridge.live.get(call_uuid)
    assert info.end_reason == reason and info.dtmf == [(seconds / 2, "1")]
    stored = bridge.storage.get_call(call_uuid)
    assert stored.end_reason == reason and stored.ended_at is not None
    assert len(bridge.storage.get_segments(call_uuid)) == len(bridge.live.finals(call_uuid)) >= 1


class MeteredBridge(Bridge):
    """Bridge + BridgeMetrics (sink before LiveCalls) + MetricsServer on a free port."""

    def __init__(self, tmp_path, **kw):
        super().__init__(tmp_path, **kw)
        self.metrics = BridgeMetrics()
        sinks = self.sinks.sinks
        sinks.insert(len(sinks) - 1, self.metrics)  # live stays last
        storage_sink = next(s for s in sinks if isinstance(s, StorageSink))
        self.metrics.watch(engine=self.engine, server=self.server, storage=self.storage,
                           storage_sink=storage_sink)
        self.http = MetricsServer(self.metrics, "127.0.0.1", 0)

    async def __aenter__(self):
        await super().__aenter__()
        await self.http.start()
        return self

    async def __aexit__(self, *exc):
        await super().__aexit__(*exc)
        await self.http.close()


