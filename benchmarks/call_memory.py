"""Memory per open call: what the engine keeps per stream (audio, VAD, endpointer,
language evidence, queued finals), without the model.

    python -m benchmarks.call_memory [--calls 200] [--utterances 10]

N streams play their prompts (8 kHz, 1.2 s pauses, 100 ms per step, interleaved as live calls
are) on one engine whose decoder is instant (audiosocket_bridge/testing/fake_decoder.py), so the figure is the
per-call state alone: the model's weights and a batch's working memory are shared by all calls
and bounded by ``EngineOptions.max_batch``, not by the number of calls. Reported: RSS growth while
N calls are open, divided by N (the first run in the process), and the growth left after a
second run of N calls has closed (the first run's leaves the allocator's arenas, which the second
reuses: what stays then is a leak).
"""
from __future__ import annotations

import argparse
import gc

from audiosocket_bridge.testing.fake_decoder import FakeDecoder, ManualClock
from whisper.streaming import EngineOptions, StreamingEngine
from whisper.streaming.types import StreamOptions

from ._common import cpu_description, pick_prompts, rss_mib, stream_audio

STEP_S = 0.1


def run(n_calls: int, per_call: int) -> dict:
    clock = ManualClock()
    engine = StreamingEngine(decoder=FakeDecoder(clock), options=EngineOptions(), clock=clock)
    audio = [stream_audio(prompts)[0] for prompts in pick_prompts(n_calls, per_call)]
    gc.collect()
    before_mib = rss_mib()
    streams = [engine.open_stream(f"call-{i}", StreamOptions()) for i in range(n_calls)]
    chunk = int(STEP_S * 8000) * 2
    peak_mib = before_mib
    for offset in range(0, max(len(pcm) for pcm in audio), chunk):
        for stream, pcm in zip(streams, audio):
            stream.push(pcm[offset : offset + chunk], 8000)
        clock.advance(STEP_S)
        engine.step()
        peak_mib = max(peak_mib, rss_mib())
    futures = [stream.close() for stream in streams]
    while not all(f.done() for f in futures):
        engine.step()
    del streams, futures
    gc.collect()
    return {"per_call_mib": (peak_mib - before_mib) / n_calls, "left_mib": rss_mib() - before_mib,
            "audio_s": max(len(pcm) for pcm in audio) / 16000}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, nargs="+", default=[200])
    parser.add_argument("--utterances", type=int, default=10)
    args = parser.parse_args()
    print(f"CPU: {cpu_description()} (the figure does not depend on it)")
    print(f"{'calls':>5} {'call audio s':>12} {'peak growth per call MiB':>25} {'left after 2nd run MiB':>23}")
    for n in args.calls:
        first, second = run(n, args.utterances), run(n, args.utterances)
        print(f"{n:>5} {first['audio_s']:>12.0f} {first['per_call_mib']:>25.2f} {second['left_mib']:>23.1f}",
              flush=True)


if __name__ == "__main__":
    main()
