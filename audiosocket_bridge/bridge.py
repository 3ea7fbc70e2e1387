"""The bridge, put together in this one place for the command line, the tests and the benchmarks.

Its order matters twice:
  * the sinks: storage first (it takes each write into its spool at once and writes it behind
    the sinks, outputs/durable.py: no sink waits for the database, except for a call's start, up
    to 2 s, so that the session's segment numbering is known to the sinks after it), then the
    console, AMI, the metrics, the caption stream, the phrase alerts (after the sinks they feed,
    so a final reaches each before its alert), and LiveCalls last: its call_ended() and
    storage's word that the call's end landed are what the transcript AGI waits for. The webhook
    queues a call once its end has landed in storage (a hook of the storage writer);
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
from whisper.streaming.interface import Engine

from .ami_servers import DEFAULT_SERVER, AmiServerSettings, unique_names
from .asterisk.ami_router import AmiRouter
from .asterisk.ami_sink import AmiConfig
from .audiosocket.server import DEFAULT_HOST, DEFAULT_PORT, BridgeServer
from .audiosocket.settings import SessionSettings
from .access import AllowList, Gate, parse_networks
from .config import (BridgeConfig, agi_secret, ami_secret, read_secret,
                     storage_password, webhook_secret)
from .values import split_host_port
from .outputs.durable import DurableStorageSink
from .outputs.live import LiveCalls
from .outputs.alerts import AlertRule, AlertSink, parse_rules
from .outputs.caption_routes import CaptionRoutes
from .outputs.captions import CaptionHub
from .outputs.http import HttpLimits, HttpServer, metrics_routes
from .outputs.http_auth import HttpAccess
from .outputs.metrics import DEFAULT_METRICS_PORT, BridgeMetrics
from .outputs.presence import BridgePresence, PresenceTiming, reuse_refusal, utc_now
from .outputs.retention import Retention
from .outputs.sinks import ConsoleSink, Sink, SinkGroup
from .outputs.spool import Spool, SpoolOptions, default_spool_dir, spool_path
from .outputs.storage import DEFAULT_STORAGE_URL, sqlite_path
from .outputs.storage_errors import open_storage_when_up
from .outputs.webhook import WebhookWorker
from .outputs.webhook_policy import WebhookOptions
from .registrations import Registrations

log = logging.getLogger(__name__)

Address = tuple[str, int]  # (host, port); port 0 takes a free one


class Bridge:
    """An async context manager: entering starts every part, leaving stops them in order."""

    def __init__(self, engine: Optional[Engine], *, storage_url: str = DEFAULT_STORAGE_URL,
                 listen: Address = (DEFAULT_HOST, DEFAULT_PORT), max_calls: int = 100,
                 session: SessionSettings = SessionSettings(),
                 ami: Union[None, AmiConfig, Sequence[AmiConfig]] = None,
                 agi_listen: Optional[Address] = None,
                 metrics_listen: Optional[Address] = None, bridge_id: Optional[str] = None,
                 presence: PresenceTiming = PresenceTiming(),
                 webhook: Optional[WebhookOptions] = None,
                 allow: Optional[AllowList] = None, agi_allow: Optional[AllowList] = None,
                 agi_secret: str = "", retention_days: float = 0.0,
                 http_access: HttpAccess = HttpAccess(), http_limits: HttpLimits = HttpLimits(),
                 alerts: Sequence[AlertRule] = (), spool_dir: Optional[str] = None,
                 spool: SpoolOptions = SpoolOptions(), storage_password: Optional[str] = None,
                 storage_wait_s: float = 0.0) -> None:
        """`allow`/`agi_allow`: who may connect (default: loopback and the AMI hosts);
        `storage_wait_s`: how long to wait for a database not up yet (StorageUnavailable)."""
        self.engine, self.session = engine, session
        self.listen = listen
        bridge_id = bridge_id or default_bridge_id(listen)
        self.storage = open_storage_when_up(storage_url, bridge_id=bridge_id,
                                            password=storage_password, wait_s=storage_wait_s)
        self.presence_storage = _presence_storage(storage_url, self.storage, storage_password)
        self.presence_timing = presence
        self.presence: Optional[BridgePresence] = None  # needs the bound address: made in start()
        self.registrations = Registrations(shared=self.storage)
        self.live = LiveCalls(track_storage=True)
        ami_servers = [ami] if isinstance(ami, AmiConfig) else list(ami or ())
        trusted = [server.host for server in ami_servers]
        self.gates = (Gate("AudioSocket", allow or AllowList.default(trusted)),
                      Gate("FastAGI", agi_allow or AllowList.default(trusted)))
        self.retention = Retention(self.storage, retention_days)
        self.ami_sink = AmiRouter(ami_servers, self.registrations) if ami_servers else None
        self.webhook = WebhookWorker(self.storage, webhook) if webhook is not None else None
        spool_file = spool_path(spool_dir or default_spool_dir(storage_url), bridge_id)
        self.storage_sink = DurableStorageSink(
            self.storage, Spool(spool_file, spool),
            on_call_stored=[self.webhook.call_stored] if self.webhook is not None else [])
        self.storage_sink.on_stored_loop = self.live.mark_stored
        self.metrics = BridgeMetrics() if metrics_listen is not None else None
        self.captions = (CaptionHub(segment_offset=self.storage.segment_offset)
                         if metrics_listen is not None else None)
        receivers = [r for r in (self.storage_sink, self.ami_sink, self.captions) if r is not None]
        self.alerts = AlertSink(alerts, receivers, segment_offset=self.storage.segment_offset)
        self.sinks = SinkGroup(self._sinks_in_order())
        self.server = BridgeServer(engine, self.sinks, self.registrations, session,
                                   host=listen[0], port=listen[1], max_calls=max_calls,
                                   gate=self.gates[0], admit=self._admit)
        self.agi_server = (FastAgiServer(*agi_listen, self.storage, self.live, self.registrations,
                                         locate_server=self._agi_server_locator(),
                                         gate=self.gates[1], secret=agi_secret)
                           if agi_listen is not None else None)
        self.metrics_server = None
        if self.metrics is not None:
            routes = CaptionRoutes(self.captions, self.storage, http_access)
            self.metrics_server = HttpServer([metrics_routes(self.metrics), routes.install],
                                             *metrics_listen, limits=http_limits,
                                             on_shutdown=[lambda: self.captions.shutdown("shutdown")])
            self.metrics.watch(engine=engine, server=self.server, storage=self.storage,
                               storage_sink=self.storage_sink, ami_sink=self.ami_sink,
                               webhook=self.webhook, retention=self.retention, gates=self.gates)

    @classmethod
    def from_config(cls, config: BridgeConfig, engine: Optional[Engine]) -> "Bridge":
        return cls(engine, storage_url=config.storage,
                   listen=split_host_port(config.listen, DEFAULT_PORT),
                   max_calls=config.max_calls, session=session_settings(config),
                   ami=ami_configs(config),
                   agi_listen=_address(config.agi_listen, DEFAULT_AGI_PORT),
                   metrics_listen=_address(config.metrics_listen, DEFAULT_METRICS_PORT),
                   bridge_id=config.bridge_id, webhook=webhook_options(config),
                   allow=_allow_list(config.allow), agi_allow=_allow_list(config.agi_allow),
                   agi_secret=agi_secret(config), retention_days=config.retention_days,
                   http_access=http_access(config),
                   http_limits=HttpLimits(config.http_max_connections),
                   alerts=parse_rules(config.alert), spool_dir=config.spool_dir,
                   storage_password=storage_password(config), storage_wait_s=config.storage_wait)

    @property
    def address(self) -> Address:
        """Where the AudioSocket server listens (the port it got, when asked for 0)."""
        return self.server.address

    async def _admit(self, uuid: str) -> Optional[str]:
        """Why a new connection may not continue the call of its UUID (presence.reuse_refusal);
        with storage down the call goes on (its finals are what matters then)."""
        loop = asyncio.get_running_loop()
        try:
            stored = await loop.run_in_executor(None, self.storage.get_call, uuid)
        except Exception:  # noqa: BLE001
            log.warning("could not look up call %s in storage; letting it start", uuid)
            return None
        return reuse_refusal(stored, utc_now(), self.presence_timing)

    def _agi_server_locator(self):
        """For FastAGI register: the AMI server a request came from (AmiRouter.server_for_agi)."""
        return self.ami_sink.server_for_agi if self.ami_sink is not None else None

    def _sinks_in_order(self) -> list[Sink]:
        optional = [sink for sink in (self.ami_sink, self.metrics, self.captions) if sink is not None]
        return [self.storage_sink, ConsoleSink(show_partials=self.session.partials), *optional,
                self.alerts, self.live]

    def _side_servers(self) -> list:
        return [server for server in (self.agi_server, self.metrics_server) if server is not None]

    async def start(self) -> None:
        self.storage_sink.start()
        if self.ami_sink is not None:
            self.ami_sink.start()
        await self.server.start()
        self.presence = BridgePresence(self.presence_storage, "%s:%d" % self.address,
                                       self.presence_timing)
        await self.presence.start()  # ends the calls of dead bridges: the webhook queues them
        if self.webhook is not None:
            self.webhook.start()
        self.retention.start()
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
        await self.retention.close()
        if self.presence is not None:
            await self.presence.close()
        if self.presence_storage is not self.storage:
            self.presence_storage.close()
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
        keepalive_s=config.keepalive, shutdown_deadline_s=config.shutdown_deadline,
        redact=config.redact, handshake_timeout_s=config.handshake_timeout)


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


def http_access(config: BridgeConfig) -> HttpAccess:
    """Who reads transcripts over HTTP: the token file's holders, everyone (--http-no-auth), or
    no one (neither given)."""
    token = read_secret(None, config.http_token_file) or None
    return HttpAccess(token=token, open_access=config.http_no_auth)


def _presence_storage(storage_url: str, storage, password: Optional[str]):
    """Heartbeats get a connection of their own (outputs/presence.py); an in-memory SQLite
    database exists only on the one connection."""
    if storage_url.startswith("sqlite:") and sqlite_path(storage_url) == ":memory:":
        return storage
    return open_storage_when_up(storage_url, bridge_id=storage.bridge_id, password=password)


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


def _allow_list(specs: Sequence[str]) -> Optional[AllowList]:
    return AllowList(parse_networks(specs)) if specs else None


def _address(text: Optional[str], default_port: int) -> Optional[Address]:
    return split_host_port(text, default_port) if text else None
