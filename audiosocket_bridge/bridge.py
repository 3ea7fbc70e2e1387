"""The bridge, put together in this one place for the command line, the tests and the benchmarks.

Its order matters twice:
  * the sinks: storage first (a final is durable before anyone else hears of it), then the
    console, AMI and the metrics, and LiveCalls last: its call_ended() is what the transcript AGI
    waits for, so it must come once every other sink has the call's last final;
  * shutdown: the AudioSocket server stops accepting and lets the calls in progress flush their
    last words, then FastAGI and the metrics server stop, and last the sinks close (storage with
    them).
"""
from __future__ import annotations

from typing import Optional

from .asterisk.agi_server import DEFAULT_AGI_PORT, FastAgiServer
from .asterisk.ami_sink import AmiConfig, AmiSink
from .audiosocket.server import DEFAULT_HOST, DEFAULT_PORT, BridgeServer
from .audiosocket.settings import SessionSettings
from .config import BridgeConfig, ami_secret, split_host_port
from .outputs.live import LiveCalls
from .outputs.metrics import DEFAULT_METRICS_PORT, BridgeMetrics, MetricsServer
from .outputs.sinks import ConsoleSink, Sink, SinkGroup, StorageSink
from .outputs.storage import DEFAULT_STORAGE_URL, open_storage
from .registrations import Registrations

Address = tuple[str, int]  # (host, port); port 0 takes a free one


class Bridge:
    """An async context manager: entering starts every part, leaving stops them in order."""

    def __init__(self, engine, *, storage_url: str = DEFAULT_STORAGE_URL,
                 listen: Address = (DEFAULT_HOST, DEFAULT_PORT), max_calls: int = 100,
                 session: SessionSettings = SessionSettings(), ami: Optional[AmiConfig] = None,
                 agi_listen: Optional[Address] = None,
                 metrics_listen: Optional[Address] = None) -> None:
        self.engine, self.session = engine, session
        self.storage = open_storage(storage_url)
        self.registrations = Registrations()
        self.live = LiveCalls()
        self.storage_sink = StorageSink(self.storage)
        self.ami_sink = AmiSink(ami, self.registrations) if ami is not None else None
        self.metrics = BridgeMetrics() if metrics_listen is not None else None
        self.sinks = SinkGroup(self._sinks_in_order())
        self.server = BridgeServer(engine, self.sinks, self.registrations, session,
                                   host=listen[0], port=listen[1], max_calls=max_calls)
        self.agi_server = (FastAgiServer(*agi_listen, self.storage, self.live, self.registrations)
                           if agi_listen is not None else None)
        self.metrics_server = None
        if self.metrics is not None:
            self.metrics_server = MetricsServer(self.metrics, *metrics_listen)
            self.metrics.watch(engine=engine, server=self.server, storage=self.storage,
                               storage_sink=self.storage_sink, ami_sink=self.ami_sink)

    @classmethod
    def from_config(cls, config: BridgeConfig, engine) -> "Bridge":
        return cls(engine, storage_url=config.storage,
                   listen=split_host_port(config.listen, DEFAULT_PORT),
                   max_calls=config.max_calls, session=session_settings(config),
                   ami=ami_config(config),
                   agi_listen=_address(config.agi_listen, DEFAULT_AGI_PORT),
                   metrics_listen=_address(config.metrics_listen, DEFAULT_METRICS_PORT))

    @property
    def address(self) -> Address:
        """Where the AudioSocket server listens (the port it got, when asked for 0)."""
        return self.server.address

    def _sinks_in_order(self) -> list[Sink]:
        optional = [sink for sink in (self.ami_sink, self.metrics) if sink is not None]
        return [self.storage_sink, ConsoleSink(show_partials=self.session.partials), *optional,
                self.live]

    def _side_servers(self) -> list:
        return [server for server in (self.agi_server, self.metrics_server) if server is not None]

    async def start(self) -> None:
        if self.ami_sink is not None:
            self.ami_sink.start()
        await self.server.start()
        for server in self._side_servers():
            await server.start()

    async def close(self) -> None:
        await self.server.close(self.session.shutdown_deadline_s)
        for server in self._side_servers():
            await server.close()
        await self.sinks.close()

    async def __aenter__(self) -> "Bridge":
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()


def session_settings(config: BridgeConfig) -> SessionSettings:
    return SessionSettings(
        max_frame_bytes=config.max_frame_bytes, idle_timeout_s=config.idle_timeout,
        raw=config.raw, language=config.language, partials=config.partials,
        registration_wait_s=config.registration_wait if config.ami_host else 0.0,
        keepalive_s=config.keepalive, shutdown_deadline_s=config.shutdown_deadline)


def ami_config(config: BridgeConfig) -> Optional[AmiConfig]:
    """The AMI sink's settings; None when no --ami-host is given."""
    if not config.ami_host:
        return None
    return AmiConfig(host=config.ami_host, port=config.ami_port, username=config.ami_user,
                     secret=ami_secret(config), partials=config.partials)


def _address(text: Optional[str], default_port: int) -> Optional[Address]:
    return split_host_port(text, default_port) if text else None
