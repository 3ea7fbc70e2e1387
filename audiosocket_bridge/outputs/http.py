"""The bridge's HTTP listener (``--metrics-listen HOST:PORT``), served by aiohttp on the bridge's
loop: Prometheus ``/metrics`` and ``/healthz`` (open, as before: no transcript text in them), and
the routes other modules add (outputs/caption_routes.py: the caption stream and the page, behind
their own authentication).

At most `max_connections` connections are open at once; one more is answered ``503`` and closed
(a WebSocket subscriber holds its connection for as long as it listens). No access log: a browser
WebSocket carries its token in the query string.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .metrics import DEFAULT_METRICS_PORT, BridgeMetrics

log = logging.getLogger(__name__)

DEFAULT_MAX_CONNECTIONS = 256
KEEPALIVE_TIMEOUT_S = 15.0
SHUTDOWN_TIMEOUT_S = 2.0
_REFUSED = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 21\r\nConnection: close\r\n\r\ntoo many connections\n")

RouteInstaller = Callable[[web.Application], None]


@dataclass(frozen=True)
class HttpLimits:
    max_connections: int = DEFAULT_MAX_CONNECTIONS

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise ValueError(f"http max connections must be at least 1, got {self.max_connections}")


class _Refused(asyncio.Protocol):
    """A connection over the cap: one 503, then closed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(_REFUSED)
        transport.close()


def metrics_routes(metrics: BridgeMetrics) -> RouteInstaller:
    """GET (and HEAD) /metrics and /healthz; the health decision stays BridgeMetrics.health()."""
    async def exposition(_request: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_request: web.Request) -> web.Response:
        ok, detail = await metrics.health()
        return web.Response(status=200 if ok else 503, text=detail + "\n", charset="utf-8")

    def install(app: web.Application) -> None:
        app.router.add_get("/metrics", exposition)
        app.router.add_get("/healthz", healthz)
    return install


async def _not_found(request: web.Request, handler):
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return web.Response(status=404, text="see /metrics, /healthz\n")


def _signal_handler(hook: Callable[[], None]):
    async def run(_app: web.Application) -> None:
        hook()
    return run


class HttpServer:
    """One aiohttp application on host:port with the routes of `installers`."""

    def __init__(self, installers: Sequence[RouteInstaller], host: str = "127.0.0.1",
                 port: int = DEFAULT_METRICS_PORT, limits: HttpLimits = HttpLimits(),
                 on_shutdown: Sequence[Callable] = ()) -> None:
        self.host, self.port, self.limits = host, port, limits
        self.app = web.Application(middlewares=[web.middleware(_not_found)])
        for install in installers:
            install(self.app)
        for hook in on_shutdown:  # e.g. close the WebSockets, or shutdown waits for them
            self.app.on_shutdown.append(_signal_handler(hook))
        self._runner: Optional[web.AppRunner] = None
        self._server: Optional[asyncio.AbstractServer] = None

    @property
    def address(self) -> tuple[str, int]:
        return self._server.sockets[0].getsockname()[:2]

    @property
    def connections(self) -> int:
        return len(self._runner.server.connections) if self._runner and self._runner.server else 0

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None,
                                     keepalive_timeout=KEEPALIVE_TIMEOUT_S,
                                     shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await self._runner.setup()
        handler = self._runner.server

        def protocol() -> asyncio.Protocol:
            if len(handler.connections) >= self.limits.max_connections:
                return _Refused()
            return handler()

        self._server = await asyncio.get_running_loop().create_server(protocol, self.host, self.port)
        log.info("HTTP on http://%s:%d/ (metrics: /metrics, health: /healthz)", *self.address)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._runner is not None:
            await self._runner.cleanup()
        self._server = self._runner = None
