"""Floods from hostile peers against the bridge as its own process, with a real call beside them.

    python -m benchmarks.floods [--seconds 60]

The bridge runs as an administrator runs it (``python -m audiosocket_bridge.cli``, tiny.en, one
engine worker, SQLite in a temp dir, FastAGI and HTTP listeners). For --seconds, at once:
  slow bytes    40 AudioSocket connections: a UUID, a header announcing 32000 bytes, then one
                byte a second (closed by the idle timeout, which counts whole messages)
  no UUID       40 connections that send nothing (closed after the 5 s handshake deadline; they
                hold no call slot), reopened as they close
  DTMF          one call sending DTMF messages as fast as it can (4 bytes each; a call keeps 512)
  AGI header    FastAGI connections sending endless agi_* lines (cut at 256 lines)
  HTTP idle     300 idle connections to the HTTP listener (256 at most are kept)
and a good call: an Asterisk prompt every few seconds, whose finals must all be stored.
RSS of the bridge and its engine worker is printed every 5 s; the growth from the first sample
is what the bounds must keep flat.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from audiosocket_bridge.testing.audiosocket_client import AudioSocketClient, message
from audiosocket_bridge.testing.ports import free_port, wait_listening
from audiosocket_bridge.testing.prompts import prompt

from ._common import cpu_description, process_rss_mib

REPO = Path(__file__).resolve().parent.parent
PROMPTS = ("conf-getpin", "vm-goodbye", "vm-reachoper")


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def bridge_rss_mib(pid: int) -> float:
    return sum(process_rss_mib(p) for p in [pid, *children(pid)] if Path(f"/proc/{p}").exists())


async def slow_bytes(port: int, stop_at: float) -> int:
    opened = 0
    while time.monotonic() < stop_at:
        client = await AudioSocketClient("127.0.0.1", port, no_activity_timeout_ms=None).connect()
        opened += 1
        await client.send_bytes(bytes([0x10, 0x7D, 0x00]))
        while not client.ended and time.monotonic() < stop_at:
            await client.send_bytes(b"\x00")
            await asyncio.sleep(1.0)
        await client.close()
    return opened


async def no_uuid(port: int, stop_at: float) -> int:
    opened = 0
    while time.monotonic() < stop_at:
        client = await AudioSocketClient("127.0.0.1", port, no_activity_timeout_ms=None).connect(send_uuid=False)
        opened += 1
        await client.wait_server_end(max(0.1, stop_at - time.monotonic()))
        await client.close()
    return opened


async def dtmf(port: int, stop_at: float) -> int:
    client = await AudioSocketClient("127.0.0.1", port, no_activity_timeout_ms=None).connect()
    sent, burst = 0, message(0x03, b"5") * 1000
    while time.monotonic() < stop_at and await client.send_bytes(burst):
        sent += 1000
        await asyncio.sleep(0)
    await client.finish("hangup")
    return sent


async def agi_header(port: int, stop_at: float) -> int:
    lines = 0
    while time.monotonic() < stop_at:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            while time.monotonic() < stop_at:
                writer.write(b"agi_x: y\n" * 500)
                await writer.drain()
                lines += 500
        except (ConnectionError, OSError):
            pass
        await asyncio.sleep(0.05)
    return lines


async def http_idle(port: int, stop_at: float) -> int:
    sockets = []
    for _ in range(300):
        try:
            sockets.append(await asyncio.open_connection("127.0.0.1", port))
        except OSError:
            break
    await asyncio.sleep(max(0.0, stop_at - time.monotonic()))
    for _, writer in sockets:
        writer.close()
    return len(sockets)


async def good_call(port: int, stop_at: float) -> tuple[str, int]:
    client = await AudioSocketClient("127.0.0.1", port).connect()
    said = 0
    while time.monotonic() < stop_at - 5:
        await client.send_audio(prompt(PROMPTS[said % len(PROMPTS)]).pcm, 8000, realtime=True)
        await client.send_silence(1.5, realtime=True)
        said += 1
    await client.finish("hangup")
    return client.call_uuid, said


async def sample_rss(pid: int, stop_at: float, every_s: float = 5.0) -> list[tuple[float, float]]:
    started, samples = time.monotonic(), []
    while time.monotonic() < stop_at + every_s:
        samples.append((time.monotonic() - started, bridge_rss_mib(pid)))
        print(f"  t={samples[-1][0]:5.0f} s  RSS {samples[-1][1]:7.1f} MiB", flush=True)
        await asyncio.sleep(every_s)
    return samples


async def flood(args, ports: dict, pid: int) -> dict:
    stop_at = time.monotonic() + args.seconds
    audiosocket = ports["audiosocket"]
    tasks = {
        "rss": sample_rss(pid, stop_at),
        "good": good_call(audiosocket, stop_at),
        "slow": asyncio.gather(*(slow_bytes(audiosocket, stop_at) for _ in range(40))),
        "no_uuid": asyncio.gather(*(no_uuid(audiosocket, stop_at) for _ in range(40))),
        "dtmf": dtmf(audiosocket, stop_at),
        "agi": asyncio.gather(*(agi_header(ports["agi"], stop_at) for _ in range(4))),
        "http": http_idle(ports["http"], stop_at),
    }
    results = await asyncio.gather(*tasks.values())
    return dict(zip(tasks, results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="floods-"))
    ports = {name: free_port() for name in ("audiosocket", "agi", "http")}
    db = folder / "calls.db"
    command = [sys.executable, "-m", "audiosocket_bridge.cli", "--listen", f"127.0.0.1:{ports['audiosocket']}",
               "--agi-listen", f"127.0.0.1:{ports['agi']}", "--metrics-listen", f"127.0.0.1:{ports['http']}",
               "--storage", f"sqlite:///{db}", "--engine-workers", "1", "--max-calls", "100",
               "--log-level", "WARNING"]
    with open(folder / "bridge.log", "wb") as log:
        process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        wait_listening(ports["audiosocket"], process)
        time.sleep(2)
        print(f"CPU: {cpu_description()}; bridge pid {process.pid}, {args.seconds:g} s of floods")
        results = asyncio.run(flood(args, ports, process.pid))
        time.sleep(3)
    finally:
        process.terminate()
        process.wait(60)
    uuid, said = results["good"]
    with sqlite3.connect(db) as connection:
        finals = connection.execute("SELECT COUNT(*) FROM segments WHERE uuid = ?", (uuid,)).fetchone()[0]
        dtmf_json = connection.execute("SELECT MAX(LENGTH(dtmf)) FROM calls").fetchone()[0]
    rss = [mib for _, mib in results["rss"]]
    print(f"connections: slow-bytes {sum(results['slow'])}, no-UUID {sum(results['no_uuid'])}, "
          f"HTTP idle {results['http']}; DTMF messages {results['dtmf']}; AGI lines {sum(results['agi'])}")
    print(f"good call: {said} prompts said, {finals} finals stored; largest stored DTMF column "
          f"{dtmf_json} bytes")
    print(f"RSS: first {rss[0]:.1f} MiB, peak {max(rss):.1f} MiB, last {rss[-1]:.1f} MiB, "
          f"growth {max(rss) - rss[0]:+.1f} MiB")


if __name__ == "__main__":
    main()
