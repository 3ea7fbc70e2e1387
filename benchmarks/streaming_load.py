"""N concurrent real-time streams on one engine: final latency, first-partial time, WER, CPU, RSS.

    python -m benchmarks.streaming_load                 # N = 1 2 4 8 16 32, tiny.en
    python -m benchmarks.streaming_load --streams 16 --utterances 5
    python -m benchmarks.streaming_load --streams 32 --first-partial-riders 2
    python -m benchmarks.streaming_load --streams 16 32 48 --workers 2   # engine processes, as the bridge

Each stream plays 8 kHz Asterisk English prompts (10 by default, a different set per stream) with
1.2 s pauses, in 20 ms frames on a real-time clock, as app_audiosocket does. Final latency is the
time the last final that overlaps an utterance (by more than 0.1 s) arrives minus the time the
utterance's last frame was pushed.
"""
from __future__ import annotations

import argparse
import threading
import time

import numpy as np
import torch

import whisper
from whisper.audio import load_audio, log_mel_spectrogram, pad_or_trim
from whisper.streaming.sim import play_realtime
from whisper.streaming.types import StreamOptions
from whisper.streaming import EngineOptions, StreamingEngine
from whisper.streaming.pool import EnginePool, usable_cores

from ._common import cpu_description, cpu_seconds, encoder_ms_per_window, pick_prompts, rss_mib, stream_audio, wer

OVERLAP_S = 0.1  # a final belongs to an utterance it overlaps by more than this (as in loadgen.py)


def hold_the_gil(share: float, stop: threading.Event, burst_s: float = 0.00009) -> None:
    """Pure Python for ``share`` of a core in short bursts, as a busy asyncio thread beside the engine."""
    while not stop.is_set():
        started = time.perf_counter()
        while time.perf_counter() - started < burst_s:
            pass
        time.sleep(burst_s / share - burst_s)


def start_engine(model, options: EngineOptions, workers: int, threads: int):
    """The engine in this process (workers 0), or a pool of worker processes."""
    if not workers:
        engine = StreamingEngine(model, options)
    else:
        engine = EnginePool(model.name, workers, options=options, threads=threads)
    engine.start()
    return engine


def run(model, n_streams: int, per_stream: int, options: EngineOptions = EngineOptions(), workers: int = 0,
        threads: int = 1):  # fmt: skip
    sets = pick_prompts(n_streams, per_stream)
    engine = start_engine(model, options, workers, threads)
    children = [worker._process.pid for worker in engine.workers] if workers else []
    rss_before = rss_mib(children)
    events = {i: [] for i in range(n_streams)}
    pushed = {}

    def on_event(i):
        return lambda e: events[i].append((time.monotonic(), e))

    streams = [engine.open_stream(f"s{i}", StreamOptions(), on_event(i)) for i in range(n_streams)]
    audio = [stream_audio(s) for s in sets]
    peak_rss = [rss_before]

    def play(i):
        pushed[i] = play_realtime(streams[i], audio[i][0], 8000)

    threads = [threading.Thread(target=play, args=(i,)) for i in range(n_streams)]
    cpu0, wall0 = cpu_seconds(children), time.monotonic()
    for i, t in enumerate(threads):
        t.start()
        time.sleep(0.37 / max(1, n_streams))  # calls don't all start on the same frame
    while any(t.is_alive() for t in threads):
        peak_rss.append(rss_mib(children))
        time.sleep(0.5)
    for s in streams:
        s.close().result(timeout=120)
    cpu1, wall1 = cpu_seconds(children), time.monotonic()
    stats = engine.stats()
    engine.stop()
    latencies, first_partials, refs, hyps = [], [], [], []
    for i in range(n_streams):
        pcm, starts, ends = audio[i]
        finals = [(t, e) for t, e in events[i] if e.is_final]
        refs.append(" ".join(p.text for p in sets[i]))
        hyps.append(" ".join(e.text for _, e in finals))
        for k, end_frame in enumerate(ends):
            start_s, end_s = starts[k] * 0.02, (end_frame + 1) * 0.02
            overlapping = [t for t, e in finals if min(e.end_s, end_s) - max(e.start_s, start_s) > OVERLAP_S]
            if overlapping:  # the utterance is done when the last final that covers it arrives
                latencies.append(max(overlapping) - pushed[i][min(end_frame, len(pushed[i]) - 1)])
            partial = next((t for t, e in events[i] if not e.is_final and e.start_s <= start_s + 0.5 and e.end_s > start_s), None)
            if partial:
                first_partials.append(partial - pushed[i][starts[k]])
    cpu_s = cpu1 - cpu0
    return {
        "n": n_streams, "utterances": n_streams * per_stream, "matched": len(latencies),
        "p50": np.percentile(latencies, 50) if latencies else float("nan"),
        "p95": np.percentile(latencies, 95) if latencies else float("nan"),
        "first_partial_p50": np.percentile(first_partials, 50) if first_partials else float("nan"),
        "wer": wer(refs, hyps), "cpu_cores": cpu_s / (wall1 - wall0),
        "rss_per_stream_mib": (max(peak_rss) - rss_before) / n_streams,
        "partials_skipped": stats.partials_skipped, "refs": refs, "sets": sets,
    }


def offline_wer(model, sets) -> float:
    refs, hyps = [], []
    for prompts in sets:
        for p in prompts:
            mel = log_mel_spectrogram(pad_or_trim(load_audio(p.path)))
            hyps.append(whisper.decode(model, mel, without_timestamps=True).text)
            refs.append(p.text)
    return wer(refs, hyps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--utterances", type=int, default=10)
    parser.add_argument("--full-encoder", action="store_true", help="encode whole 30 s windows")
    parser.add_argument("--gil-busy", type=float, default=0.0, metavar="SHARE",
                        help="a thread beside the engine runs pure Python for this share of a core (e.g. 0.07)")
    parser.add_argument("--first-partial-riders", type=int, default=EngineOptions.first_partial_riders,
                        metavar="N", help="first partials that may ride along with a batch of finals")
    parser.add_argument("--workers", type=int, default=0, metavar="N",
                        help="N engine processes (as the bridge runs them) instead of the engine in this process")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (per worker with --workers; default: cores / workers)")
    args = parser.parse_args()
    threads = args.threads or max(1, usable_cores() // max(1, args.workers))
    torch.set_num_threads(threads)
    stop_busy = threading.Event()
    if args.gil_busy > 0:
        threading.Thread(target=hold_the_gil, args=(args.gil_busy, stop_busy), daemon=True).start()
    model = whisper.load_model(args.model)
    model.short_encoder = not args.full_encoder
    full_ms, short_ms = encoder_ms_per_window(model)
    print(f"CPU: {cpu_description()}")
    engine = f"{args.workers} worker processes" if args.workers else "engine in this process"
    print(f"model {args.model}, encoder {model.encoder.conv1.weight.dtype}, {engine}, {threads} threads each, "
          f"{full_ms:.0f} ms per 30 s window, {short_ms:.0f} ms short path for 3 s "
          f"({'whole windows' if args.full_encoder else 'short encoder'})")
    print(f"{'N':>3} {'p50 s':>6} {'p95 s':>6} {'1st partial s':>13} {'WER':>6} {'offline WER':>11} "
          f"{'CPU cores':>9} {'RSS/stream MiB':>14} {'matched':>8} {'partials skipped':>16}")
    for n in args.streams:
        r = run(model, n, args.utterances, EngineOptions(first_partial_riders=args.first_partial_riders),
                workers=args.workers, threads=threads)
        off = offline_wer(model, r["sets"])
        print(f"{n:>3} {r['p50']:>6.2f} {r['p95']:>6.2f} {r['first_partial_p50']:>13.2f} {r['wer']:>6.1%} {off:>11.1%} "
              f"{r['cpu_cores']:>9.2f} {r['rss_per_stream_mib']:>14.1f} {r['matched']:>4}/{r['utterances']:<3} "
              f"{r['partials_skipped']:>16}", flush=True)
    stop_busy.set()


if __name__ == "__main__":
    main()
