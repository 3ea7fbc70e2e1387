"""Caption stream fan-out: N live calls' partials and finals to M WebSocket subscribers, the
latency the stream adds and the CPU it costs the bridge's process.

The bridge side is what the bridge runs (CaptionHub as a sink, CaptionRoutes on the aiohttp
HttpServer, a SQLite storage) fed synthetic transcript events on a schedule like live calls
(a partial every --partial-interval seconds, a final every --final-interval seconds, per call);
the subscribers are WebSocket clients in a separate process (so their CPU is not counted). Each
event's text carries the time it was emitted; a subscriber's latency is its arrival time minus
that. The run is made twice: without subscribers (the cost of the events themselves) and with
them, and the difference in the bridge process's CPU time is what the fan-out costs.

    python -m benchmarks.caption_fanout --calls 64 --subscribers 50 --seconds 30
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import tempfile
import time
from datetime import datetime, timezone

from audiosocket_bridge.outputs.caption_routes import CaptionRoutes
from audiosocket_bridge.outputs.captions import CaptionHub, CaptionLimits
from audiosocket_bridge.outputs.http import HttpLimits, HttpServer
from audiosocket_bridge.outputs.http_auth import HttpAccess
from audiosocket_bridge.outputs.sinks import CallInfo
from audiosocket_bridge.outputs.storage import open_storage
from audiosocket_bridge.registrations import Registration
from whisper.streaming.types import TranscriptEvent

TOKEN = "benchmark-token-0123456789"


def _event(uuid: str, kind: str, index: int, start_s: float) -> TranscriptEvent:
    text = f"emitted {time.time():.6f} some words of a caption line as people speak"
    return TranscriptEvent(uuid, kind, index, text, start_s, start_s + 1.0, "en", -0.2, 0.01)


async def _one_call(hub: CaptionHub, number: int, args, stop_at: float) -> None:
    uuid = f"00000000-0000-4000-8000-{number:012d}"
    call = CallInfo(uuid, "127.0.0.1:1", datetime.now(timezone.utc), 8000, Registration(uuid))
    await hub.call_started(call)
    await asyncio.sleep(number * args.partial_interval / args.calls)  # calls out of step
    index, since_final_s, clock_s = 0, 0.0, 0.0
    while time.monotonic() < stop_at:
        await asyncio.sleep(args.partial_interval)
        clock_s += args.partial_interval
        since_final_s += args.partial_interval
        kind = "final" if since_final_s >= args.final_interval else "partial"
        await hub.transcript(call, _event(uuid, kind, index, clock_s))
        if kind == "final":
            index, since_final_s = index + 1, 0.0
    call.ended_at, call.end_reason = datetime.now(timezone.utc), "hangup"
    await hub.call_ended(call)


async def _serve(args, subscribers: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        storage = open_storage(f"sqlite:///{folder}/calls.db")
        hub = CaptionHub(CaptionLimits(max_subscribers=max(subscribers, 1)))
        routes = CaptionRoutes(hub, storage, HttpAccess(token=TOKEN))
        server = HttpServer([routes.install], "127.0.0.1", 0, HttpLimits(subscribers + 16))
        await server.start()
        results = multiprocessing.get_context("spawn").Queue()
        client = None
        if subscribers:
            client = multiprocessing.get_context("spawn").Process(
                target=_subscribers_process, args=(server.address, subscribers, args.seconds + 5, results))
            client.start()
            while len(hub.subscribers) < subscribers:
                await asyncio.sleep(0.05)
        cpu_s, wall_s = time.process_time(), time.monotonic()
        stop_at = time.monotonic() + args.seconds
        await asyncio.gather(*(_one_call(hub, n, args, stop_at) for n in range(args.calls)))
        cpu_s, wall_s = time.process_time() - cpu_s, time.monotonic() - wall_s
        found = {"cpu_s": cpu_s, "wall_s": wall_s, "slow_closed": hub.slow_closed}
        if client is not None:
            found.update(await asyncio.to_thread(results.get, True, args.seconds + 60))
            client.join(30)
        await server.close()
        storage.close()
        return found


def _subscribers_process(address, count: int, seconds: float, results) -> None:
    results.put(asyncio.run(_subscribe_all(address, count, seconds)))


async def _subscribe_all(address, count: int, seconds: float) -> dict:
    import aiohttp

    latencies: list[float] = []
    received = {"messages": 0, "closed_early": 0}

    async def one(session) -> None:
        url = f"http://{address[0]}:{address[1]}/stream"
        async with session.ws_connect(url, headers={"Authorization": f"Bearer {TOKEN}"}) as socket:
            async for frame in socket:
                message = json.loads(frame.data)
                received["messages"] += 1
                if message["type"] in ("partial", "final"):
                    latencies.append(time.time() - float(message["text"].split()[1]))
                elif message["type"] == "bye":
                    received["closed_early"] += message["reason"] != "shutdown"

    async with aiohttp.ClientSession() as session:
        tasks = [asyncio.create_task(one(session)) for _ in range(count)]
        await asyncio.wait(tasks, timeout=seconds)
        for task in tasks:
            task.cancel()
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")
    return {**received, "p50_ms": 1000 * pick(0.50), "p95_ms": 1000 * pick(0.95),
            "p99_ms": 1000 * pick(0.99), "max_ms": 1000 * (latencies[-1] if latencies else float("nan")),
            "mean_ms": 1000 * (statistics.fmean(latencies) if latencies else float("nan"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=64)
    parser.add_argument("--subscribers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--partial-interval", type=float, default=0.8)
    parser.add_argument("--final-interval", type=float, default=3.2)
    args = parser.parse_args()
    alone = asyncio.run(_serve(args, 0))
    fanned = asyncio.run(_serve(args, args.subscribers))
    events_per_s = args.calls / args.partial_interval
    added_cpu = (fanned["cpu_s"] - alone["cpu_s"]) / fanned["wall_s"]
    print(f"{args.calls} calls x {args.subscribers} subscribers for {args.seconds:g} s: "
          f"{events_per_s:.0f} events/s in, {fanned['messages'] / fanned['wall_s']:.0f} messages/s out")
    print(f"bridge process CPU: {100 * alone['cpu_s'] / alone['wall_s']:.1f}% of a core without "
          f"subscribers, {100 * fanned['cpu_s'] / fanned['wall_s']:.1f}% with them "
          f"(fan-out adds {100 * added_cpu:.1f}% of a core, "
          f"{1e6 * added_cpu / max(1.0, fanned['messages'] / fanned['wall_s']):.1f} us per message sent)")
    print(f"latency emit -> subscriber: p50 {fanned['p50_ms']:.1f} ms, p95 {fanned['p95_ms']:.1f} ms, "
          f"p99 {fanned['p99_ms']:.1f} ms, max {fanned['max_ms']:.1f} ms")
    print(f"subscribers closed as too slow: {fanned['slow_closed']} (seen by clients: "
          f"{fanned['closed_early']})")


if __name__ == "__main__":
    main()
