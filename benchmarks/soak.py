"""Soak test (not for CI): N calls re-dialled continuously for --minutes against an in-process bridge.

    python -m benchmarks.soak                          # 4 lines, 30 minutes, tiny.en
    python -m benchmarks.soak --calls 8 --minutes 3

Everything is on 127.0.0.1: the bridge (tiny.en, SQLite in a temp dir, AMI sink), the fake AMI
(audiosocket_bridge/testing/recording_ami.py) and the calls (benchmarks/loadgen.py). RSS of this process
(bridge + load generator + fake AMI), with --workers N plus that of the N engine processes, is
sampled every 10 s. Halfway through, the fake AMI goes down for
--outage seconds and comes back on the same port (an Asterisk restart); the AMI sink must
queue the finals and deliver them after it reconnects. More faults, each once:

    --db-lock S      a quarter in, another connection holds SQLite's write lock for S seconds
                     (a database away): storage writes wait in the spool and land afterwards
    --kill-worker    three quarters in, one engine worker is SIGKILLed (with --workers 2 or
                     more): its calls move to another, the pool starts it again
    --stop-worker S  five eighths in, one engine worker is SIGSTOPped (it hangs): the pool
                     kills it after S seconds of silence and starts it again

    python -m benchmarks.soak --calls 4 --minutes 4 --workers 2 --db-lock 20 --kill-worker \
        --stop-worker 10 --outage 10

At the end: RSS start/peak/end, calls completed, finals stored vs finals AMI received (lost must
be 0), p50/p95 final latency; the spool's peak and that it emptied.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import sqlite3
import sys
import tempfile
import time

from audiosocket_bridge.bridge import Bridge
from audiosocket_bridge.testing.fake_ami import transcriber
from audiosocket_bridge.testing.recording_ami import RecordingAmi

from ._common import PAUSE_S, pick_prompts, process_rss_mib, rss_mib
from .loadgen import (AMI_SECRET, AMI_USER, LoadReport, compare_with_storage, in_process_bridge,
                      load_engine, place_call)


async def _line(i: int, n_lines: int, bridge: Bridge, ami: RecordingAmi, args, stop_at: float,
                results: list) -> None:
    """One caller: dial, play, hang up, wait for TranscriptEnd, dial again, until stop_at."""
    dial = 0
    await asyncio.sleep(i * 0.37 / n_lines)
    while time.monotonic() < stop_at:
        prompts = pick_prompts(n_lines, args.utterances, shift=dial * 3 + 1)[i]
        results.append(await place_call(*bridge.address, prompts, ami, pause_s=args.pause,
                                        end_wait_s=180, label=f"{i}"))
        dial += 1


def _worker_pids(engine) -> list[int]:
    """The engine workers running now (the pool replaces those that die)."""
    workers = getattr(engine, "workers", [])
    return [w._process.pid for w in workers if w._process is not None and w.is_alive()]


async def _sample_rss(samples: list, every_s: float, done: asyncio.Event, engine, spool) -> None:
    started = time.monotonic()
    while True:
        try:
            rss = rss_mib(_worker_pids(engine))
        except FileNotFoundError:  # a worker died between listing and reading
            rss = float("nan")
        samples.append((time.monotonic() - started, rss, spool.pending))
        if done.is_set():
            return
        try:
            await asyncio.wait_for(done.wait(), every_s)
        except asyncio.TimeoutError:
            pass


async def _db_lock(path: str, at_s: float, held_s: float, log: list) -> None:
    """Another writer holds SQLite's lock: every write of the bridge fails meanwhile."""
    await asyncio.sleep(at_s)
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    log.append(f"database locked at {at_s:.0f} s for {held_s:.0f} s")
    print(log[-1], flush=True)
    await asyncio.sleep(held_s)
    locker.execute("ROLLBACK")
    locker.close()
    print("database unlocked", flush=True)


async def _signal_worker(engine, at_s: float, signum: int, log: list) -> None:
    await asyncio.sleep(at_s)
    pid = _worker_pids(engine)[0]
    os.kill(pid, signum)
    log.append(f"engine worker {pid} sent {signal.Signals(signum).name} at {at_s:.0f} s")
    print(log[-1], flush=True)


async def _outage(ami: RecordingAmi, at_s: float, down_s: float, log: list) -> None:
    await asyncio.sleep(at_s)
    log.append(f"AMI down at {at_s:.0f} s for {down_s:.0f} s")
    print(log[-1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, ami.restart, down_s)
    print("AMI back", flush=True)


async def soak(args) -> int:
    ami = RecordingAmi({AMI_USER: transcriber(AMI_SECRET)})
    ami.start()
    engine = load_engine(args.model, args.threads, args.workers)
    if args.stop_worker:
        engine.supervision = dataclasses.replace(engine.supervision, hang_after_s=args.stop_worker)
    samples, notes, results = [], [], []
    done = asyncio.Event()
    duration_s = args.minutes * 60
    try:
        with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
            async with in_process_bridge(engine, ami, f"sqlite:///{tmp}/soak.db") as bridge:
                spool = bridge.storage_sink.spool
                sampler = asyncio.create_task(_sample_rss(samples, args.rss_every, done, engine, spool))
                faults = _faults(args, engine, f"{tmp}/soak.db", duration_s, ami, notes)
                started = time.monotonic()
                stop_at = started + duration_s
                await asyncio.gather(*(_line(i, args.calls, bridge, ami, args, stop_at, results)
                                       for i in range(args.calls)))
                await asyncio.gather(*faults)
                wall_s = time.monotonic() - started
                while spool.pending and time.monotonic() < started + duration_s + 120:
                    await asyncio.sleep(0.1)  # what storage kept while locked lands
                # let the AMI sink drain what it queued, then compare with storage
                drain_deadline = time.monotonic() + 60
                while bridge.ami_sink.pending and time.monotonic() < drain_deadline:
                    await asyncio.sleep(0.1)
                report = LoadReport(args.calls, results, wall_s=wall_s)
                compare_with_storage(report, bridge.storage)
                report.duplicate_finals = ami.duplicate_finals
                ami_counters = dict(bridge.ami_sink.counters)
                done.set()
                await sampler
                pids = _worker_pids(engine)
                ends = [process_rss_mib(pid) for pid in ("self", *pids)]
                spooled_at_end = spool.pending
                respawns = getattr(engine, "respawns", 0)
    finally:
        engine.stop()
        ami.stop()
    rss = [r for _, r, _ in samples if r == r]
    print(f"\nsoak: {args.calls} lines x {args.minutes:g} min ({wall_s:.0f} s), {args.utterances} utterances/call; "
          + ("; ".join(notes) or "no faults"))
    print(f"RSS MiB: start {rss[0]:.0f}  peak {max(rss):.0f}  end {rss[-1]:.0f}  "
          f"({len(rss)} samples every {args.rss_every:g} s)")
    print("RSS samples (MiB, storage writes waiting): "
          + " ".join(f"{t:.0f}s={r:.0f}/{w}" for t, r, w in samples))
    print(f"storage spool: peak {max(w for _, _, w in samples)} writes waiting, {spooled_at_end} at the end; "
          f"engine workers started again: {respawns}")
    if pids:
        print("RSS MiB at the end: this process " + f"{ends[0]:.0f}, engine workers "
              + ", ".join(f"{r:.0f}" for r in ends[1:]))
    print(f"calls: {report.calls_completed} completed of {len(report.calls)} dialled; "
          f"utterances with a final {report.utterances_with_final}/{report.utterances}")
    print(f"finals: stored {report.finals_stored}, received by AMI {report.finals_received}, "
          f"lost {report.finals_lost}, mismatched {report.finals_mismatched}, duplicates {report.duplicate_finals}")
    print(f"AMI sink: sessions {ami_counters.get('sessions', 0)}, down {ami_counters.get('down', 0)}, "
          f"sent {ami_counters.get('sent', 0)}, rejected {ami_counters.get('rejected', 0)}")
    print(f"final latency s: p50 {report.p50_s:.2f}  p95 {report.p95_s:.2f}  "
          f"max {max(report.latencies_s, default=float('nan')):.2f}; WER {report.wer:.1%}; "
          f"max send lag {report.max_send_lag_s:.3f} s")
    ok = (report.finals_lost == 0 and report.finals_mismatched == 0 and spooled_at_end == 0
          and report.calls_completed == len(report.calls))
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def _faults(args, engine, db_path: str, duration_s: float, ami: RecordingAmi, notes: list) -> list:
    faults = [asyncio.create_task(_outage(ami, duration_s / 2, args.outage, notes))]
    if args.db_lock:
        faults.append(asyncio.create_task(_db_lock(db_path, duration_s / 4, args.db_lock, notes)))
    if args.stop_worker:
        faults.append(asyncio.create_task(_signal_worker(engine, duration_s * 5 / 8, signal.SIGSTOP, notes)))
    if args.kill_worker:
        faults.append(asyncio.create_task(_signal_worker(engine, duration_s * 3 / 4, signal.SIGKILL, notes)))
    return faults


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=4, help="concurrent lines, each re-dialled")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--utterances", type=int, default=3, help="prompts per call")
    parser.add_argument("--pause", type=float, default=PAUSE_S)
    parser.add_argument("--outage", type=float, default=10.0, help="AMI outage in the middle, s")
    parser.add_argument("--db-lock", type=float, default=0.0, metavar="S",
                        help="SQLite's write lock held by another connection for S s, a quarter in")
    parser.add_argument("--kill-worker", action="store_true",
                        help="SIGKILL an engine worker three quarters in (needs --workers 2+)")
    parser.add_argument("--stop-worker", type=float, default=0.0, metavar="S",
                        help="SIGSTOP an engine worker five eighths in; the pool kills it after S s")
    parser.add_argument("--rss-every", type=float, default=10.0, help="RSS sampling period, s")
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (per worker with --workers)")
    parser.add_argument("--workers", type=int, default=0, metavar="N",
                        help="N engine processes, as the bridge runs them (default: the engine in this process)")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(soak(args)))


if __name__ == "__main__":
    main()
