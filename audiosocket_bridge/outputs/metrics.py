"""Prometheus metrics and health checks for the bridge (``--metrics-listen HOST:PORT``).

`BridgeMetrics` owns a dedicated CollectorRegistry (several can coexist, e.g. in
tests).  It is a Sink (calls and transcripts are counted as they happen) and,
once `watch()` is given the engine/server/storage/AMI objects, a collector that
reads their state at scrape time (engine.stats(), the server's ConnectionStats, AMI outbox).
outputs/http.py serves them (aiohttp):

  GET /metrics   Prometheus text format
  GET /healthz   200 "ok" if the engine thread is alive, storage answers, no more than the
                 spool's bound of storage writes wait for the database, the spool's disk takes
                 a write, and the bridge is not draining (SIGTERM), else 503 with the failed
                 check(s): a load balancer's health check (deploy/haproxy.cfg) then sends new
                 calls elsewhere. BridgeMetrics.health() is the one place that decides.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TYPE_CHECKING, Optional

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest

from .sinks import CallInfo

if TYPE_CHECKING:
    from whisper.streaming.interface import Engine
    from whisper.streaming.types import TranscriptEvent

log = logging.getLogger(__name__)

DEFAULT_METRICS_PORT = 9300
LATENCY_BUCKETS_S = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 30.0)
STORAGE_PING_TIMEOUT_S = 2.0
DISK_PROBE_BYTES = 4096


def _reason_label(reason: Optional[str]) -> str:
    """'error: unknown message kind 0x42' -> 'error' (bounded label values)."""
    return (reason or "unknown").split(":", 1)[0].strip() or "unknown"


def engine_alive(engine: "Engine") -> bool:
    """The engine's scheduler thread runs."""
    return bool(engine.is_alive())


class BridgeMetrics:
    """Sink + scrape-time collector over one CollectorRegistry."""

    def __init__(self, registry: Optional[CollectorRegistry] = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.active_calls = Gauge("audiosocket_active_calls",
                                  "Calls started (UUID received) and not yet ended", registry=r)
        self.calls_started = Counter("audiosocket_calls_started", "Calls started", registry=r)
        self.calls_ended = Counter("audiosocket_calls_ended", "Calls ended, by end reason "
                                   "(hangup, closed, idle-timeout, error, shutdown, ...)",
                                   ["reason"], registry=r)
        self.transcripts = Counter("audiosocket_transcripts", "Transcript events delivered to the "
                                   "sinks", ["kind"], registry=r)
        self.final_latency = Histogram(
            "audiosocket_final_latency_seconds",
            "Estimated delay from the end of an utterance to its final: arrival time minus "
            "(call start + event end_s), i.e. assuming audio flows in real time from the UUID",
            buckets=LATENCY_BUCKETS_S, registry=r)
        for kind in ("partial", "final"):
            self.transcripts.labels(kind)
        self.engine = self.server = self.storage = self.storage_sink = self.ami_sink = None
        self.webhook = self.retention = None
        self.gates: tuple = ()
        self.draining = False  # set by Bridge.drain(): /healthz fails from then on
        self._collector: Optional[_StateCollector] = None

    def watch(self, *, engine: Optional["Engine"] = None, server=None, storage=None, storage_sink=None,
              ami_sink=None, webhook=None, retention=None, gates=()) -> "BridgeMetrics":
        """Objects read at scrape time and by health(); any may be None."""
        self.retention, self.gates = retention, tuple(gates)
        self.engine, self.server, self.storage = engine, server, storage
        self.storage_sink, self.ami_sink, self.webhook = storage_sink, ami_sink, webhook
        if self._collector is None:
            self._collector = _StateCollector(self)
            self.registry.register(self._collector)
        return self

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    async def health(self) -> tuple[bool, str]:
        problems = ["draining: finishing its calls, taking no new ones"] if self.draining else []
        if self.engine is not None and not engine_alive(self.engine):
            problems.append("engine thread not running")
        if self.storage is not None:
            loop = asyncio.get_running_loop()
            try:
                await asyncio.wait_for(loop.run_in_executor(None, self.storage.ping),
                                       STORAGE_PING_TIMEOUT_S)
            except asyncio.TimeoutError:
                problems.append(f"storage did not answer within {STORAGE_PING_TIMEOUT_S:g} s")
            except Exception as error:  # noqa: BLE001 - any failure means unhealthy
                problems.append(f"storage: {error}")
        spool = getattr(self.storage_sink, "spool", None)
        if spool is not None:
            problems.extend(await _spool_problems(spool))
        return (not problems, "; ".join(problems) or "ok")

    # -- Sink
    async def call_started(self, call: CallInfo) -> None:
        self.calls_started.inc()
        self.active_calls.inc()

    async def transcript(self, call: CallInfo, event: TranscriptEvent) -> None:
        self.transcripts.labels(event.kind).inc()
        if event.is_final:
            utterance_end = call.started_at.timestamp() + event.end_s
            self.final_latency.observe(max(0.0, time.time() - utterance_end))

    async def call_ended(self, call: CallInfo) -> None:
        self.active_calls.dec()
        self.calls_ended.labels(_reason_label(call.end_reason)).inc()

    async def close(self) -> None:
        return None


async def _spool_problems(spool) -> list[str]:
    problems = []
    if spool.pending > spool.options.unhealthy_records:
        problems.append(f"storage: {spool.pending} writes wait for the database "
                        f"(more than {spool.options.unhealthy_records})")
    try:
        await asyncio.get_running_loop().run_in_executor(None, probe_disk, spool.path.parent)
    except OSError as error:
        problems.append(f"spool disk: {error.strerror or error}")
    return problems


def probe_disk(directory) -> None:
    """Raises OSError unless `directory` takes a small write to disk (a full disk fails)."""
    path = os.path.join(directory, f".healthz-probe-{os.getpid()}")
    try:
        with open(path, "wb") as probe:
            probe.write(b"\0" * DISK_PROBE_BYTES)
            probe.flush()
            os.fsync(probe.fileno())
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


class _StateCollector:
    """Reads the watched objects at scrape time."""

    def __init__(self, metrics: BridgeMetrics) -> None:
        self.metrics = metrics

    def describe(self):
        return []  # dynamic: nothing is collected at registration

    def collect(self):
        m = self.metrics
        if m.server is not None:
            yield from self._server(m.server)
        if m.storage_sink is not None:
            yield from self._storage(m.storage_sink)
        if m.ami_sink is not None:
            yield from self._ami(m.ami_sink)
        if m.webhook is not None:
            yield from self._webhook(m.webhook)
        if m.engine is not None:
            yield from self._engine(m.engine)
        yield from self._access(m.gates)
        if m.retention is not None:
            yield CounterMetricFamily("audiosocket_retention_deleted_calls", "Calls deleted past "
                                      "their retention", value=m.retention.deleted_calls)
            yield CounterMetricFamily("audiosocket_retention_failures", "Retention runs that "
                                      "failed (storage errors)", value=m.retention.failures)

    @staticmethod
    def _access(gates):
        refused = CounterMetricFamily("audiosocket_access_refused", "Connections or requests "
                                      "refused by a listener's allow-list, secret or bounds",
                                      labels=["listener", "reason"])
        for gate in gates:
            for reason, count in sorted(gate.refused.items()):
                refused.add_metric([gate.listener, reason], count)
        yield refused

    @staticmethod
    def _storage(sink):
        yield CounterMetricFamily("audiosocket_storage_errors", "Storage writes refused for "
                                  "good (skipped)", value=sink.errors)
        spool = getattr(sink, "spool", None)
        if spool is None:
            return
        yield GaugeMetricFamily("audiosocket_storage_available", "0 while storage writes fail "
                                "(they are kept and tried again)", value=float(sink.available))
        yield GaugeMetricFamily("audiosocket_storage_spooled", "Storage writes waiting for the "
                                "database (memory and spool file)", value=spool.pending)
        yield GaugeMetricFamily("audiosocket_storage_spool_file_bytes", "Size of the spool file",
                                value=spool.file_bytes)
        yield CounterMetricFamily("audiosocket_storage_spool_dropped", "Storage writes lost: "
                                  "memory and spool file both full", value=spool.dropped)

    @staticmethod
    def _ami(router):
        """Per AMI server (label `server`): the AmiRouter's sinks."""
        connected = GaugeMetricFamily("audiosocket_ami_connected",
                                      "1 while the AMI session is up", labels=["server"])
        pending = GaugeMetricFamily("audiosocket_ami_pending", "AMI items queued, not yet sent",
                                    labels=["server"])
        dropped = CounterMetricFamily("audiosocket_ami_dropped", "AMI items dropped from the "
                                      "outbox (partials first; finals only past its bound)",
                                      labels=["server", "kind"])
        for name, sink in router.servers.items():
            connected.add_metric([name], 1.0 if sink.state == "connected" else 0.0)
            pending.add_metric([name], sink.pending)
            stats = sink.outbox_stats
            dropped.add_metric([name, "partial"], stats.dropped_partials)
            dropped.add_metric([name, "final"], stats.dropped_finals)
        yield connected
        yield pending
        yield dropped

    @staticmethod
    def _webhook(worker):
        for name, doc, value in (
                ("delivered", "Calls POSTed to the webhook and acknowledged (2xx)", worker.delivered),
                ("failed", "Calls given up: a permanent error or too old", worker.failed),
                ("retries", "Webhook POSTs that failed and will be tried again", worker.retries)):
            yield CounterMetricFamily(f"audiosocket_webhook_{name}", doc, value=value)
        yield GaugeMetricFamily("audiosocket_webhook_pending", "Calls queued for the webhook, "
                                "not yet delivered (all bridges of this URL)", value=worker.pending)

    @staticmethod
    def _server(server):
        stats = server.stats
        yield GaugeMetricFamily("audiosocket_connections_active", "Open AudioSocket connections",
                                value=server.active_calls)
        yield CounterMetricFamily("audiosocket_connections", "AudioSocket connections accepted "
                                  "or refused", value=stats.connections)
        yield CounterMetricFamily("audiosocket_connections_refused", "Connections refused "
                                  "(max-calls reached, not on the allow-list)",
                                  value=stats.connections_refused)
        yield CounterMetricFamily("audiosocket_handshake_timeouts", "Connections closed for "
                                  "sending no UUID in time", value=stats.handshake_timeouts)
        frames = CounterMetricFamily("audiosocket_frames_received", "AudioSocket messages "
                                     "received, by kind", labels=["kind"])
        for kind, count in sorted(stats.frames_received.items()):
            frames.add_metric([kind], count)
        yield frames
        yield CounterMetricFamily("audiosocket_received_bytes", "Bytes read from AudioSocket "
                                  "connections", value=stats.received_bytes)
        yield CounterMetricFamily("audiosocket_protocol_errors", "Connections ended for bad "
                                  "input (protocol or call-flow errors)",
                                  value=stats.protocol_errors)
        yield CounterMetricFamily("audiosocket_audio_dropped_chunks", "Audio messages dropped "
                                  "between network and engine (queue full)",
                                  value=stats.audio_dropped_chunks)
        yield CounterMetricFamily("audiosocket_audio_dropped_seconds", "Audio dropped between "
                                  "network and engine (queue full)", value=stats.audio_dropped_s)

    @staticmethod
    def _engine(engine: "Engine"):
        try:
            stats = engine.stats()
        except Exception:  # noqa: BLE001 - a scrape must not fail on the engine
            log.exception("metrics: engine.stats() failed")
            return
        for name, doc, value in (
                ("active_streams", "Open engine streams", stats.active_streams),
                ("queued_audio_seconds", "Audio waiting to be decoded (queue depth)",
                 stats.queued_audio_s),
                ("lag_seconds", "How far the engine is behind live audio", stats.lag_s),
                ("behind", "1 while the engine is behind (lag over its threshold)",
                 1.0 if stats.behind else 0.0),
                ("window_cost_seconds", "Measured seconds per decoded window",
                 stats.window_cost_s),
                ("partial_interval_seconds", "Least time between a talking stream's partials "
                 "that the measured capacity allows", stats.partial_interval_s)):
            yield GaugeMetricFamily(f"audiosocket_engine_{name}", doc, value=value)
        for name, doc, value in (
                ("finals", "Finals emitted by the engine", stats.finals_emitted),
                ("partials", "Partials emitted by the engine", stats.partials_emitted),
                ("partials_skipped", "Partials skipped while behind", stats.partials_skipped),
                ("audio_dropped_seconds", "Audio the engine dropped while behind",
                 stats.audio_dropped_s)):
            yield CounterMetricFamily(f"audiosocket_engine_{name}", doc, value=value)
