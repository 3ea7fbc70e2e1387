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
import random
import subprocess
import tempfile
import time
import wave
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from tests.support.fake_ami import transcriber
from tests.support.prompts import english_prompts
from tests.support.recording_ami import RecordingAmi
from tests.support.voices import espeak
from whisper.evaluation import normalize_english

from ._common import cpu_description, cpu_seconds, wer
from .loadgen import AMI_SECRET, AMI_USER, CallResult, in_process_bridge, load_engine, play_call

RATE_HZ = 8000
FRAME_SAMPLES = RATE_HZ // 50  # 20 ms
MARGIN_S = 0.15  # silence kept around each clip's speech
BUCKETS_S = ((0.0, 2.0), (2.0, 4.0), (4.0, 8.0), (8.0, 30.0))
LATE_S = 1.0  # a final later than this is "late" in the breakdown
ESPEAK_VOICES = ("en-us", "en-gb+f3", "en+m3", "en-us+f2", "en-gb-x-rp+m5")
# What callers say: long turns, numbers inside prose.
SENTENCES = (
    "I would like to change the delivery address on my order because I moved to a new flat last month.",
    "My account number is 4 7 1 1 2 and I was charged twice for the same invoice in March.",
    "Could you please tell me when the technician will arrive, I have been waiting at home since 9 this morning.",
    "The parcel was supposed to arrive on Tuesday but the tracking page still says it is in the warehouse.",
    "I called yesterday about the broken router and somebody promised to call me back within 2 hours.",
    "Please cancel the appointment on the 14th and book me for the following week if that is possible.",
    "We have 3 phones on this contract and only one of them can make calls to other countries.",
    "Yes, that is correct, my date of birth is the 5th of June and my postcode starts with 2 9.",
    "I think there is a mistake on the bill, it says 65 pounds but we agreed on 40 a month.",
    "My daughter lost her card on the train this afternoon and I would like to block it immediately.",
    "Can you send the contract to my email address again, the first one never arrived in my inbox.",
    "I have been a customer for more than 10 years and this is the first time I have had to complain.",
)


@dataclass(frozen=True)
class Clip:
    kind: str  # "prompt", "sentence", "paused"
    text: str
    pcm: bytes  # 8 kHz slin: MARGIN_S of silence, the speech, MARGIN_S of silence

    @property
    def speech_s(self) -> float:
        return len(self.pcm) / 2 / RATE_HZ - 2 * MARGIN_S


def speech_span(pcm: bytes) -> Tuple[int, int]:
    """[first, last] sample of a clean clip's speech: from the first to the last 20 ms frame
    within 35 dB of its loudest frame (and above -55 dBFS)."""
    samples = np.frombuffer(pcm, "<i2").astype(np.float64) / 32768
    n = len(samples) // FRAME_SAMPLES
    level = 10 * np.log10(np.mean(samples[: n * FRAME_SAMPLES].reshape(n, FRAME_SAMPLES) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(level > max(-55.0, level.max() - 35.0))
    if not len(loud):
        return 0, len(samples) - 1
    return int(loud[0]) * FRAME_SAMPLES, (int(loud[-1]) + 1) * FRAME_SAMPLES - 1


def trimmed(pcm: bytes) -> bytes:
    """The clip's speech with MARGIN_S of silence either side (the clip's own silence dropped)."""
    first, last = speech_span(pcm)
    margin = bytes(2 * int(MARGIN_S * RATE_HZ))
    return margin + pcm[2 * first : 2 * (last + 1)] + margin


def prompt_clips(max_s: float = 25.0) -> List[Clip]:
    """Every English Asterisk prompt with two words or more and up to ``max_s`` of speech."""
    clips = []
    for p in english_prompts():
        if len(p.text.split()) < 2 or not normalize_english(p.text).strip():
            continue
        clip = Clip("prompt", p.text, trimmed(p.pcm))
        if 0.5 <= clip.speech_s <= max_s:
            clips.append(clip)
    return clips


def sentence_clip(text: str, voice: str, pause_s: Optional[float] = None) -> Clip:
    """``text`` read by espeak-ng's ``voice``; with ``pause_s``, a pause that long at its middle word."""
    if pause_s is None:
        return Clip("sentence", text, trimmed(espeak(voice, text)))
    words = text.split()
    half = len(words) // 2
    first, second = trimmed(espeak(voice, " ".join(words[:half]))), trimmed(espeak(voice, " ".join(words[half:])))
    margin = 2 * int(MARGIN_S * RATE_HZ)
    pause = bytes(2 * int(pause_s * RATE_HZ))
    return Clip("paused", text, first[:-margin] + pause + second[margin:])


def call_clips(rng: random.Random, prompts: Sequence[Clip], n: int) -> List[Clip]:
    """A call's turns: prompts, read sentences and paused sentences in turn, prompts drawn evenly
    over their lengths (so long menus come as often as short ones)."""
    by_length = sorted(prompts, key=lambda c: c.speech_s)
    clips = []
    for k in range(n):
        kind = ("prompt", "sentence", "prompt", "paused")[k % 4]
        if kind == "prompt":
            bucket = rng.randrange(len(BUCKETS_S))
            low, high = BUCKETS_S[bucket]
            pool = [c for c in by_length if low <= c.speech_s < high] or by_length
            clips.append(rng.choice(pool))
        else:
            text, voice = rng.choice(SENTENCES), rng.choice(ESPEAK_VOICES)
            clips.append(sentence_clip(text, voice, rng.uniform(0.35, 0.7) if kind == "paused" else None))
    return clips


def _frame_aligned(pcm: bytes) -> bytes:
    return pcm + bytes(-len(pcm) % (2 * FRAME_SAMPLES))


def call_audio(clips: Sequence[Clip], rng: random.Random) -> Tuple[bytes, List[int], List[int]]:
    """The clean call: 0.5 s of silence, then each clip and 1.0-1.6 s of silence. Returns (pcm,
    starts, ends): the 20 ms frames where each clip's speech starts and ends."""
    pcm = bytes(2 * RATE_HZ // 2)
    starts, ends = [], []
    margin = int(MARGIN_S * RATE_HZ)
    for clip in clips:
        at = len(pcm) // 2
        starts.append((at + margin) // FRAME_SAMPLES)
        ends.append((at + len(clip.pcm) // 2 - margin - 1) // FRAME_SAMPLES)
        pcm = _frame_aligned(pcm + clip.pcm + bytes(2 * int(rng.uniform(1.0, 1.6) * RATE_HZ)))
    return pcm, starts, ends


def _sox(args: Sequence[str], stdin: bytes) -> bytes:
    try:
        return subprocess.run(["sox", *args], input=stdin, check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        raise SystemExit(f"sox failed ({error}); install sox") from error


def pink_noise(n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-power pink (1/f power) noise: white noise shaped in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n_samples))
    freqs = np.arange(len(spectrum), dtype=np.float64)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0
    noise = np.fft.irfft(spectrum, n_samples)
    return noise / np.sqrt(np.mean(noise**2))


def telephone_line(pcm: bytes, starts: Sequence[int], ends: Sequence[int], snr_db: Optional[float],
                   seed: int, ulaw: bool = True) -> bytes:
    """Pink noise ``snr_db`` below the speech's power (over its speech frames), then G.711 mu-law
    and back (sox)."""
    samples = np.frombuffer(pcm, "<i2").astype(np.float64)
    if snr_db is not None:
        speech = np.concatenate([samples[s * FRAME_SAMPLES : (e + 1) * FRAME_SAMPLES] for s, e in zip(starts, ends)])
        noise = pink_noise(len(samples), np.random.default_rng(seed))
        samples = samples + noise * np.sqrt(np.mean(speech**2) / 10 ** (snr_db / 10))
    pcm = np.clip(samples, -32768, 32767).astype("<i2").tobytes()
    if ulaw:
        raw = ["-t", "raw", "-r", str(RATE_HZ), "-e", "signed", "-b", "16", "-c", "1"]
        pcm = _sox(["-t", "ul", "-r", str(RATE_HZ), "-c", "1", "-", *raw, "-"], _sox([*raw, "-", "-t", "ul", "-"], pcm))
    return pcm


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

        def traced_decode(jobs):
            started_s = self.clock()
            results = decode(jobs)
            for job in jobs:
                if job.kind == "final":
                    self.decoded[(job.stream.id, job.frames)] = (started_s, self.clock())
            return results

        def traced_emit(job, result, timings=None):
            if job.kind == "final":
                self.emitted[(job.stream.id, job.segment_index)] = (job.ready_at_s, job.frames, self.clock())
            return emit(job, result, timings)

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


@dataclass(frozen=True)
class PlannedCall:
    clips: Tuple[Clip, ...]
    pcm: bytes  # as the line carries it
    starts: Tuple[int, ...]
    ends: Tuple[int, ...]


def plan_calls(n_calls: int, n_utterances: int, snr_db: Optional[float], seed: int, ulaw: bool) -> List[PlannedCall]:
    prompts = prompt_clips()
    calls = []
    for index in range(n_calls):
        rng = random.Random(seed * 100003 + index)
        clips = call_clips(rng, prompts, n_utterances)
        pcm, starts, ends = call_audio(clips, rng)
        line = telephone_line(pcm, starts, ends, snr_db, seed * 100003 + index, ulaw)
        calls.append(PlannedCall(tuple(clips), line, tuple(starts), tuple(ends)))
    return calls


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
           cpu_share: float, load: Tuple[float, float, float]) -> None:
    latencies = [u.latency_s for u in utterances if u.latency_s is not None]
    firsts = [u.first_partial_s for u in utterances if u.first_partial_s is not None]
    live = sum(r.errors for r in results) / max(1, sum(r.ref_words for r in results))
    completed = sum(r.completed for r in results)
    first_p50 = f"{np.percentile(firsts, 50):.2f}" if firsts else "-"
    offline_text = f"{offline:.1%}" if offline is not None else "-"
    print(f"\n== {label}: finals for {len(latencies)}/{len(utterances)} utterances, calls complete "
          f"{completed}/{len(results)}; WER live {live:.1%}, offline {offline_text}; first partial p50 "
          f"{first_p50} s (from speech start); CPU {cpu_share:.0%} of one core; load average "
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
    engine = load_engine(args.model, args.threads, args.workers)
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
                    cpu_before, wall_before = cpu_seconds(_worker_pids(engine)), time.monotonic()
                    async with in_process_bridge(engine, ami, f"sqlite:///{tmp}/{snr}-{n_calls}.db",
                                                 max_calls=max(200, n_calls), partials=args.partials) as bridge:
                        results, utterances = await run_calls(bridge, ami, planned, args.partials, trace)
                    cpu_share = (cpu_seconds(_worker_pids(engine)) - cpu_before) \
                        / (time.monotonic() - wall_before)
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
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(f"CPU: {cpu_description()}, {os.cpu_count()} CPUs; load average before "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()), flush=True)
    print(f"callmix: model {args.model}, {args.utterances} turns/call, partials {'on' if args.partials else 'off'}",
          flush=True)
    asyncio.run(_run(args))


if __name__ == "__main__":
    main()
