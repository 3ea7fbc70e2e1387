"""The bridge, put together in this one place for the command line, the tests and the benchmarks.

Its order matters twice:
  * the sinks: storage first (a final is durable before anyone else hears of it), then the
    webhook's (it queues a call once storage has all of it), the console, AMI and the metrics,
    and LiveCalls last: its call_ended() is what the transcript AGI waits for, so it must come
    once every other sink has the call's last final;
  * shutdown: optionally a drain first (/healthz fails so a load balancer sends new calls
    elsewhere, then the server stops accepting and calls in progress may end by themselves), then
    the AudioSocket server ends the calls left and lets them flush their last words, FastAGI and
    the metrics server stop, the webhook worker stops (what it has not delivered stays queued),
    the bridge leaves the database's presence table, and last the sinks close (storage with
    them).
"""
from __future__ import annotations

import asyncio
import logging
import socket
from contextlib import suppress
from typing import Optional, Sequence, Union

from .asterisk.agi_server import DEFAULT_AGI_PORT, FastAgiServer
from whisper.language import check_languages

from .ami_servers import DEFAULT_SERVER, AmiServerSettings, unique_names
from .asterisk.ami_router import AmiRouter
from .asterisk.ami_sink import AmiConfig
from .audiosocket.server import DEFAULT_HOST, DEFAULT_PORT, BridgeServer
from .audiosocket.settings import SessionSettings
from .config import BridgeConfig, ami_secret, read_secret, split_host_port, webhook_secret
from .outputs.live import LiveCalls
from .outputs.metrics import DEFAULT_METRICS_PORT, BridgeMetrics, MetricsServer
from .outputs.presence import BridgePresence, PresenceTiming
from .outputs.sinks import ConsoleSink, Sink, SinkGroup, StorageSink
from .outputs.storage import DEFAULT_STORAGE_URL, open_storage
from .outputs.webhook import WebhookSink, WebhookWorker
from .outputs.webhook_policy import WebhookOptions
from .registrations import Registrations

log = logging.getLogger(__name__)

Address = tuple[str, int]  # (host, port); port 0 takes a free one


class Bridge:
    """An async context manager: entering starts every part, leaving stops them in order."""

    def __init__(self, engine, *, storage_url: str = DEFAULT_STORAGE_URL,
                 listen: Address = (DEFAULT_HOST, DEFAULT_PORT), max_calls: int = 100,
                 session: SessionSettings = SessionSettings(),
                 ami: Union[None, AmiConfig, Sequence[AmiConfig]] = None,
                 agi_listen: Optional[Address] = None,
                 metrics_listen: Optional[Address] = None, bridge_id: Optional[str] = None,
                 presence: PresenceTiming = PresenceTiming(),
                 webhook: Optional[WebhookOptions] = None) -> None:
        self.engine, self.session = engine, session
        self.listen = listen
        self.storage = open_storage(storage_url, bridge_id=bridge_id or default_bridge_id(listen))
        self.presence_timing = presence
        self.presence: Optional[BridgePresence] = None  # needs the bound address: made in start()
        self.registrations = Registrations(shared=self.storage)
        self.live = LiveCalls()
        self.storage_sink = StorageSink(self.storage)
        ami_servers = [ami] if isinstance(ami, AmiConfig) else list(ami or ())
        self.ami_sink = AmiRouter(ami_servers, self.registrations) if ami_servers else None
        self.webhook = WebhookWorker(self.storage, webhook) if webhook is not None else None
        self.webhook_sink = WebhookSink(self.webhook) if self.webhook is not None else None
        self.metrics = BridgeMetrics() if metrics_listen is not None else None
        self.sinks = SinkGroup(self._sinks_in_order())
        self.server = BridgeServer(engine, self.sinks, self.registrations, session,
                                   host=listen[0], port=listen[1], max_calls=max_calls)
        self.agi_server = (FastAgiServer(*agi_listen, self.storage, self.live, self.registrations,
                                         locate_server=self._agi_server_locator())
                           if agi_listen is not None else None)
        self.metrics_server = None
        if self.metrics is not None:
            self.metrics_server = MetricsServer(self.metrics, *metrics_listen)
            self.metrics.watch(engine=engine, server=self.server, storage=self.storage,
                               storage_sink=self.storage_sink, ami_sink=self.ami_sink,
                               webhook=self.webhook)

    @classmethod
    def from_config(cls, config: BridgeConfig, engine) -> "Bridge":
        return cls(engine, storage_url=config.storage,
                   listen=split_host_port(config.listen, DEFAULT_PORT),
                   max_calls=config.max_calls, session=session_settings(config),
                   ami=ami_configs(config),
                   agi_listen=_address(config.agi_listen, DEFAULT_AGI_PORT),
                   metrics_listen=_address(config.metrics_listen, DEFAULT_METRICS_PORT),
                   bridge_id=config.bridge_id, webhook=webhook_options(config))

    @property
    def address(self) -> Address:
        """Where the AudioSocket server listens (the port it got, when asked for 0)."""
        return self.server.address

    def _agi_server_locator(self):
        """For FastAGI register: the AMI server a request came from (AmiRouter.server_for_agi)."""
        return self.ami_sink.server_for_agi if self.ami_sink is not None else None

    def _sinks_in_order(self) -> list[Sink]:
        durable = [sink for sink in (self.storage_sink, self.webhook_sink) if sink is not None]
        optional = [sink for sink in (self.ami_sink, self.metrics) if sink is not None]
        return [*durable, ConsoleSink(show_partials=self.session.partials), *optional, self.live]

    def _side_servers(self) -> list:
        return [server for server in (self.agi_server, self.metrics_server) if server is not None]

    async def start(self) -> None:
        if self.ami_sink is not None:
            self.ami_sink.start()
        await self.server.start()
        self.presence = BridgePresence(self.storage, "%s:%d" % self.address, self.presence_timing)
        await self.presence.start()  # ends the calls of dead bridges: the webhook queues them
        if self.webhook is not None:
            self.webhook.start()
        for server in self._side_servers():
            await server.start()

    async def drain(self, grace_s: float, timeout_s: float,
                    interrupt: Optional[asyncio.Event] = None) -> None:
        """Before close(): /healthz fails at once; new calls are still taken for `grace_s` (while a
        load balancer's health check notices: only with a metrics server to check), then refused;
        calls in progress get up to `timeout_s` to end by themselves. `interrupt` (a second
        SIGTERM) cuts both waits short."""
        interrupt = interrupt or asyncio.Event()
        log.info("draining: /healthz fails from now on; %d call(s) in progress",
                 self.server.active_calls)
        if self.metrics is not None:
            self.metrics.draining = True
        if self.presence is not None:
            with suppress(Exception):
                await self.presence.set_draining()
        if self.metrics_server is not None:
            await _wait_either(asyncio.sleep(grace_s), interrupt, grace_s)
        self.server.stop_accepting()
        if timeout_s > 0 and self.server.active_calls:
            log.info("draining: waiting up to %g s for %d call(s) to end", timeout_s,
                     self.server.active_calls)
            await _wait_either(self.server.wait_idle(), interrupt, timeout_s)

    async def close(self) -> None:
        await self.server.close(self.session.shutdown_deadline_s)
        for server in self._side_servers():
            await server.close()
        if self.webhook is not None:  # what it has not delivered stays queued for the next start
            await self.webhook.close()
        if self.presence is not None:
            await self.presence.close()
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
        raw=config.raw, partials=config.partials,
        language=check_languages(config.language), vocabulary=config.vocabulary,
        registration_wait_s=(config.registration_wait if config.ami_host or config.ami_servers
                             else 0.0),
        keepalive_s=config.keepalive, shutdown_deadline_s=config.shutdown_deadline)


def ami_configs(config: BridgeConfig) -> list[AmiConfig]:
    """One AmiConfig per AMI server: --ami-host's (named "default"), then the named ones
    (ami_servers.py); empty when AMI is off."""
    shared_secret = ami_secret(config) if (config.ami_host or config.ami_servers) else ""
    configs = []
    if config.ami_host:
        configs.append(AmiConfig(name=DEFAULT_SERVER, host=config.ami_host, port=config.ami_port,
                                 username=config.ami_user, secret=shared_secret,
                                 partials=config.partials))
    for server in config.ami_servers:
        configs.append(AmiConfig(name=server.name, host=server.host, port=server.port,
                                 username=server.user or config.ami_user,
                                 secret=_server_secret(server, shared_secret),
                                 partials=config.partials))
    unique_names(c.name for c in configs)
    return configs


def _server_secret(server: AmiServerSettings, shared_secret: str) -> str:
    """A named server's own secret or the contents of its secret file, else the bridge-wide one."""
    if server.secret or server.secret_file:
        return read_secret(server.secret, server.secret_file)
    return shared_secret


def webhook_options(config: BridgeConfig) -> Optional[WebhookOptions]:
    """The webhook's settings; None when no --webhook-url is given."""
    if not config.webhook_url:
        return None
    return WebhookOptions(url=config.webhook_url, secret=webhook_secret(config),
                          timeout_s=config.webhook_timeout, max_age_s=config.webhook_max_age)


def default_bridge_id(listen: Address) -> str:
    """This host's name and the AudioSocket port: unique among bridges sharing a database as long
    as two bridges on one host listen on different ports."""
    return f"{socket.gethostname()}:{listen[1]}"


async def _wait_either(work, interrupt: asyncio.Event, timeout_s: float) -> None:
    """Until `work` is done, `interrupt` is set or `timeout_s` has passed."""
    tasks = {asyncio.ensure_future(work), asyncio.ensure_future(interrupt.wait())}
    _, undone = await asyncio.wait(tasks, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    for task in undone:
        task.cancel()
    await asyncio.gather(*undone, return_exceptions=True)


def _address(text: Optional[str], default_port: int) -> Optional[Address]:
    return split_host_port(text, default_port) if text else None
