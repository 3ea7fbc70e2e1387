"""Soak test (not for CI): N calls re-dialled continuously for --minutes against an in-process bridge.

    python -m benchmarks.soak                          # 4 lines, 30 minutes, tiny.en
    python -m benchmarks.soak --calls 8 --minutes 3

Everything is on 127.0.0.1: the bridge (tiny.en, SQLite in a temp dir, AMI sink), the fake AMI
(tests/support/recording_ami.py) and the calls (benchmarks/loadgen.py). RSS of this process
(bridge + load generator + fake AMI), with --workers N plus that of the N engine processes, is
sampled every 10 s. Halfway through, the fake AMI goes down for
--outage seconds and comes back on the same port (an Asterisk restart); the AMI sink must
queue the finals and deliver them after it reconnects. At the end: RSS start/peak/end, calls
completed, finals stored vs finals AMI received (lost must be 0), p50/p95 final latency.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time

from audiosocket_bridge.bridge import Bridge
from tests.support.fake_ami import transcriber
from tests.support.recording_ami import RecordingAmi

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


async def _sample_rss(samples: list, every_s: float, done: asyncio.Event, pids=()) -> None:
    started = time.monotonic()
    while not done.is_set():
        samples.append((time.monotonic() - started, rss_mib(pids)))
        try:
            await asyncio.wait_for(done.wait(), every_s)
        except asyncio.TimeoutError:
            pass
    samples.append((time.monotonic() - started, rss_mib(pids)))


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
    pids = [worker._process.pid for worker in engine.workers] if args.workers else []
    samples, notes, results = [], [], []
    done = asyncio.Event()
    duration_s = args.minutes * 60
    try:
        with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
            async with in_process_bridge(engine, ami, f"sqlite:///{tmp}/soak.db") as bridge:
                sampler = asyncio.create_task(_sample_rss(samples, args.rss_every, done, pids))
                outage = asyncio.create_task(_outage(ami, duration_s / 2, args.outage, notes))
                started = time.monotonic()
                stop_at = started + duration_s
                await asyncio.gather(*(_line(i, args.calls, bridge, ami, args, stop_at, results)
                                       for i in range(args.calls)))
                await outage
                wall_s = time.monotonic() - started
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
                ends = [process_rss_mib(pid) for pid in ("self", *pids)]
    finally:
        engine.stop()
        ami.stop()
    rss = [r for _, r in samples]
    print(f"\nsoak: {args.calls} lines x {args.minutes:g} min ({wall_s:.0f} s), {args.utterances} utterances/call, "
          f"{notes[0] if notes else 'no AMI outage'}")
    print(f"RSS MiB: start {rss[0]:.0f}  peak {max(rss):.0f}  end {rss[-1]:.0f}  "
          f"({len(rss)} samples every {args.rss_every:g} s)")
    print("RSS samples: " + " ".join(f"{t:.0f}s={r:.0f}" for t, r in samples))
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
    ok = (report.finals_lost == 0 and report.finals_mismatched == 0
          and report.calls_completed == len(report.calls))
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=4, help="concurrent lines, each re-dialled")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--utterances", type=int, default=3, help="prompts per call")
    parser.add_argument("--pause", type=float, default=PAUSE_S)
    parser.add_argument("--outage", type=float, default=10.0, help="AMI outage in the middle, s")
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
