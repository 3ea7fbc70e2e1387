"""Call mixes as callers speak them, through the bridge in real time: latency per utterance length,
where a late final's time goes, and live against offline accuracy.

    python -m benchmarks.callmix --calls 1 --snr clean 15 10 5          # each SNR a run of its own
    python -m benchmarks.callmix --calls 64 --utterances 10 --snr clean  # full load

Each call says ``--utterances`` turns drawn from: Asterisk's English prompts of every length (up to
25 s, "Please press 1 to mute or unmute yourself, 4 or 6 to ..."), long sentences read by espeak-ng's
voices (other "speakers", with numbers inside prose), and such sentences with a pause of 0.35-0.7 s
in the middle. Turns are 1.0-1.6 s apart. The whole call then gets pink noise at ``--snr`` dB below
the speech's power (sox) and goes through G.711 mu-law and back (sox), as a line carries it.

Latency is measured from the end of the caller's speech: each clip's speech span is found on the
clean clip (20 ms frames within 35 dB of its loudest), not from its trailing silence. A final
belongs to the utterances it overlaps (benchmarks.loadgen), and the last of them to arrive
completes the utterance. With the bridge in this process (no ``--workers``), the engine is traced
to split each final's latency: endpointer wait (speech end -> utterance cut), queueing (cut ->
its decode started), decoding (the batch that decoded it, counted from the cut when it was decoded
speculatively during the trailing silence), guards (decode -> emitted: re-decodes, finals before it
in order) and delivery (emitted -> arrived on AMI).

Offline is ``model.transcribe()`` of each call's same noisy G.711 audio, the same model.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from audiosocket_bridge.testing.callmix import BUCKETS_S, LATE_S, RATE_HZ, Clip, PlannedCall, plan_calls
from audiosocket_bridge.testing.fake_ami import transcriber
from audiosocket_bridge.testing.recording_ami import RecordingAmi

from ._common import cpu_description, cpu_seconds, machine_speed, wer
from .loadgen import AMI_SECRET, AMI_USER, CallResult, add_engine_arguments, in_process_bridge, load_engine, play_call

# ---------------------------------------------------------------- where a final's time goes

class Trace:
    """Times of the in-process engine's finals: when each was cut, decoded and emitted.

    It wraps the scheduler's decode and the delivery's emit of one engine instance (benchmark
    instrumentation only; the engine keeps no such record)."""

    def __init__(self, engine) -> None:
        scheduler = engine._scheduler
        self.clock = scheduler.clock
        self.decoded: Dict[Tuple[str, Tuple[int, int]], Tuple[float, float]] = {}  # (stream, frames) -> batch
        self.emitted: Dict[Tuple[str, int], Tuple[float, Tuple[int, int], float]] = {}  # -> ready, frames, emit
        decode, emit = scheduler._decode, scheduler._delivery._emit

        def traced_decode(jobs, on_result=None):
            started_s = self.clock()
            early = set()

            def traced_result(index, result):
                early.add(index)
                if jobs[index].kind == "final":
                    self.decoded[(jobs[index].stream_id, jobs[index].frames)] = (started_s, self.clock())
                on_result(index, result)

            results = decode(jobs, traced_result if on_result is not None else None)
            for index, job in enumerate(jobs):
                if job.kind == "final" and index not in early:
                    self.decoded[(job.stream_id, job.frames)] = (started_s, self.clock())
            return results

        def traced_emit(stream, job, result):
            if job.kind == "final":
                self.emitted[(job.stream_id, job.segment_index)] = (job.ready_at_s, job.frames, self.clock())
            return emit(stream, job, result)

        scheduler._decode = traced_decode
        scheduler._delivery._emit = traced_emit

    def breakdown(self, uuid: str, segment: int, speech_end_s: float, arrived_s: float) -> Optional[Dict[str, float]]:
        """Endpointer wait, queueing, decoding, guards and delivery of one final, seconds."""
        if (uuid, segment) not in self.emitted:
            return None
        ready_s, frames, emit_s = self.emitted[(uuid, segment)]
        started_s, done_s = self.decoded.get((uuid, frames), (ready_s, ready_s))
        return {"endpointer": ready_s - speech_end_s, "queue": max(0.0, started_s - ready_s),
                "decode": max(0.0, done_s - max(started_s, ready_s)), "guards": emit_s - max(done_s, ready_s),
                "delivery": arrived_s - emit_s}


# ---------------------------------------------------------------- one run

@dataclass
class Utterance:
    clip: Clip
    latency_s: Optional[float]
    first_partial_s: Optional[float]
    parts: Optional[Dict[str, float]]


async def run_calls(bridge, ami: RecordingAmi, planned: Sequence[PlannedCall], partials: bool,
                    trace: Optional[Trace], stagger_s: float = 1.0) -> Tuple[List[CallResult], List[Utterance]]:
    host, port = bridge.address
    results = await asyncio.gather(*(
        play_call(host, port, call.pcm, call.starts, call.ends, " ".join(c.text for c in call.clips), ami,
                  start_delay_s=i * stagger_s / max(1, len(planned)), label=f"mix{i}", partials=partials)
        for i, call in enumerate(planned)))
    utterances = []
    for call, result in zip(planned, results):
        for k, clip in enumerate(call.clips):
            parts = None
            latency_s = result.latencies_s[k]
            if trace is not None and latency_s is not None:
                final = result.last_finals[k]
                parts = trace.breakdown(result.uuid, final.segment, final.arrived - latency_s, final.arrived)
            utterances.append(Utterance(clip, latency_s, result.first_partials_s[k], parts))
    return list(results), utterances


def offline_wer(model, planned: Sequence[PlannedCall]) -> Tuple[float, List[str]]:
    from whisper.audio import int16_to_float, resample
    from whisper.numbers import digits_as_numerals

    hyps = []
    for call in planned:
        audio = resample(int16_to_float(call.pcm), RATE_HZ)
        hyps.append(digits_as_numerals(model.transcribe(audio, temperature=0.0, language="en")["text"], "en"))
    return wer([" ".join(c.text for c in call.clips) for call in planned], hyps), hyps


# ---------------------------------------------------------------- report

def _stats(values: Sequence[float]) -> str:
    if not values:
        return f"{'-':>6} {'-':>6} {'-':>6} {0:>4}"
    p50, p95 = np.percentile(values, [50, 95])
    return f"{p50:>6.2f} {p95:>6.2f} {max(values):>6.2f} {len(values):>4}"


def report(label: str, utterances: Sequence[Utterance], results: Sequence[CallResult], offline: Optional[float],
           cpu_share: Tuple[float, float], load: Tuple[float, float, float]) -> None:
    """`cpu_share`: of one core, everything (this process and the engine's), and this process's
    (the bridge and the calls' players, with the engine too when it runs here)."""
    latencies = [u.latency_s for u in utterances if u.latency_s is not None]
    firsts = [u.first_partial_s for u in utterances if u.first_partial_s is not None]
    live = sum(r.errors for r in results) / max(1, sum(r.ref_words for r in results))
    completed = sum(r.completed for r in results)
    first_p50 = f"{np.percentile(firsts, 50):.2f}" if firsts else "-"
    offline_text = f"{offline:.1%}" if offline is not None else "-"
    print(f"\n== {label}: finals for {len(latencies)}/{len(utterances)} utterances, calls complete "
          f"{completed}/{len(results)}; WER live {live:.1%}, offline {offline_text}; first partial p50 "
          f"{first_p50} s (from speech start); CPU {cpu_share[0]:.0%} of one core ({cpu_share[1]:.0%} in this "
          f"process); load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    early = sum(1 for x in latencies if x < 0)
    if early:  # its last final arrived before the words ended: the words after it were dropped
        print(f"  {early} utterance(s) whose last final came before the speech ended (their end was lost)")
    print(f"  {'final latency from speech end':<30} {'p50 s':>6} {'p95 s':>6} {'max s':>6} {'n':>4}")
    print(f"  {'all':<30} {_stats(latencies)}")
    for low, high in BUCKETS_S:
        bucket = [u.latency_s for u in utterances if u.latency_s is not None and low <= u.clip.speech_s < high]
        print(f"  {f'speech {low:g}-{high:g} s':<30} {_stats(bucket)}")
    for kind in ("prompt", "sentence", "paused"):
        of_kind = [u.latency_s for u in utterances if u.latency_s is not None and u.clip.kind == kind]
        print(f"  {kind:<30} {_stats(of_kind)}")
    traced = [u for u in utterances if u.parts is not None]
    if traced:
        names = ("endpointer", "queue", "decode", "guards", "delivery")
        print(f"  {'where the time goes, median s':<30} " + " ".join(f"{n:>10}" for n in names))
        for title, group in (("all finals", traced), (f"late finals (> {LATE_S:g} s)",
                                                      [u for u in traced if u.latency_s > LATE_S])):
            medians = [f"{np.median([u.parts[n] for u in group]):>10.2f}" if group else f"{'-':>10}" for n in names]
            print(f"  {f'{title}, n={len(group)}':<30} " + " ".join(medians))
        for u in sorted(traced, key=lambda u: -u.latency_s)[:5]:
            parts = " ".join(f"{n} {u.parts[n]:.2f}" for n in names)
            print(f"    {u.latency_s:.2f} s ({u.clip.kind}, {u.clip.speech_s:.1f} s): {parts}")
    missing = [u for u in utterances if u.latency_s is None]
    for u in missing[:5]:
        print(f"    no final: {u.clip.kind}, {u.clip.speech_s:.1f} s", flush=True)


def _details(results: Sequence[CallResult]) -> None:
    """Per call: its finals, stream times and text (transcripts: a benchmark's own speech only)."""
    for result in results:
        print(f"  call {result.uuid}: WER {result.wer:.1%}\n    ref: {result.reference}")
        for final in result.ami_finals:
            print(f"    #{final.segment} {final.start_s:6.2f}-{final.end_s:6.2f} {final.text!r}")


def _worker_pids(engine) -> List[int]:
    return [w._process.pid for w in getattr(engine, "workers", ()) if w._process is not None]


async def _run(args) -> None:
    ami = RecordingAmi({AMI_USER: transcriber(AMI_SECRET)})
    ami.start()
    engine = load_engine(args.model, args.threads, args.workers, args.engine_option, args.quantize)
    model = None if args.workers or not args.offline else engine.decoder.model
    trace = None if args.workers else Trace(engine)
    try:
        with tempfile.TemporaryDirectory(prefix="callmix-") as tmp:
            for snr in args.snr:
                snr_db = None if snr == "clean" else float(snr)
                for n_calls in args.calls:
                    planned = plan_calls(n_calls, args.utterances, snr_db, args.seed, not args.no_g711)
                    label = f"{n_calls} calls, {'clean' if snr_db is None else f'{snr_db:g} dB SNR'}" \
                            f"{'' if args.no_g711 else ', G.711'}"
                    pids = _worker_pids(engine)
                    cpu_before, own_before, wall_before = cpu_seconds(pids), cpu_seconds(), time.monotonic()
                    async with in_process_bridge(engine, ami, f"sqlite:///{tmp}/{snr}-{n_calls}.db",
                                                 max_calls=max(200, n_calls), partials=args.partials) as bridge:
                        results, utterances = await run_calls(bridge, ami, planned, args.partials, trace)
                    wall_s = time.monotonic() - wall_before
                    cpu_share = ((cpu_seconds(pids) - cpu_before) / wall_s, (cpu_seconds() - own_before) / wall_s)
                    load = os.getloadavg()
                    offline = offline_wer(model, planned)[0] if model is not None else None
                    report(label, utterances, results, offline, cpu_share, load)
                    if args.verbose:
                        _details(results)
    finally:
        engine.stop()
        ami.stop()


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, nargs="+", default=[1])
    parser.add_argument("--utterances", type=int, default=8, help="turns per call")
    parser.add_argument("--snr", nargs="+", default=["clean"], help="'clean' or dB of speech over pink noise")
    parser.add_argument("--no-g711", action="store_true", help="leave out the mu-law round trip")
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (in-process engine)")
    parser.add_argument("--workers", type=int, default=0, help="engine processes (pool.py); no breakdown then")
    parser.add_argument("--no-partials", dest="partials", action="store_false", help="calls ask for no partials")
    parser.add_argument("--no-offline", dest="offline", action="store_false", help="skip the offline WER")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--verbose", action="store_true", help="per call: the reference and every final")
    add_engine_arguments(parser)
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(f"CPU: {cpu_description()}, {os.cpu_count()} CPUs; load average before "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()), flush=True)
    print(machine_speed(args.model), flush=True)
    settings = list(args.engine_option) + (["quantized"] if args.quantize else [])
    print(f"callmix: model {args.model}, {args.utterances} turns/call, partials {'on' if args.partials else 'off'}"
          + "".join(f", {setting}" for setting in settings), flush=True)
    asyncio.run(_run(args))


if __name__ == "__main__":
    main()
