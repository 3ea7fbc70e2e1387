"""The bridge's HTTP listener (aiohttp): /metrics and /healthz as before, and its connection cap."""
import asyncio

import pytest

from audiosocket_bridge.outputs.http import HttpLimits, HttpServer, metrics_routes
from audiosocket_bridge.outputs.metrics import BridgeMetrics
from tests.support.bridges import run
from tests.support.scrape import http_get, samples


async def _raw(address, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(*address)
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return answer


def test_metrics_and_health_served_and_other_methods_refused():
    async def scenario():
        metrics = BridgeMetrics()
        metrics.calls_started.inc()
        server = HttpServer([metrics_routes(metrics)], "127.0.0.1", 0)
        await server.start()
        try:
            status, body = await http_get(server.address, "/metrics")
            assert status == 200
            assert samples(body)[("audiosocket_calls_started_total", ())] == 1
            assert await http_get(server.address, "/healthz") == (200, "ok\n")
            metrics.draining = True
            status, body = await http_get(server.address, "/healthz")
            assert status == 503 and "draining" in body
            head = await _raw(server.address, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n")
            post = await _raw(server.address, b"POST /metrics HTTP/1.1\r\nHost: x\r\n"
                              b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            assert post.startswith(b"HTTP/1.1 405")
        finally:
            await server.close()
    run(scenario())


def test_connections_over_the_cap_are_refused_and_freed_slots_reused():
    async def scenario():
        server = HttpServer([metrics_routes(BridgeMetrics())], "127.0.0.1", 0, HttpLimits(3))
        await server.start()
        try:
            idle = [await asyncio.open_connection(*server.address) for _ in range(3)]
            for _ in range(50):
                if server.connections == 3:
                    break
                await asyncio.sleep(0.02)
            refused = await _raw(server.address, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert refused.startswith(b"HTTP/1.1 503") and b"too many connections" in refused
            for _, writer in idle:
                writer.close()
            for _ in range(100):
                if server.connections == 0:
                    break
                await asyncio.sleep(0.02)
            assert await http_get(server.address, "/healthz") == (200, "ok\n")
        finally:
            await server.close()
    run(scenario())


def test_limits_refuse_a_zero_cap():
    with pytest.raises(ValueError, match="at least 1"):
        HttpLimits(0)
