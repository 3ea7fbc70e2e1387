"""Recorded calls per minute: `audiosocket-bridge transcribe` (ours, into SQLite) against
faster-whisper's batched pipeline on the same stereo recordings.

    python3 -m benchmarks.recordings [--recordings 12] [--prompts-per-leg 5] [--model tiny.en|base]
                                     [--batch-size 8] [--threads 2] [--skip-faster-whisper]

Each recording is MixMonitor-style stereo at 8 kHz: a different draw of Debian's English prompts on
each channel, each prompt followed by 1.2 s of silence. Ours is the whole command path (reading,
resampling, transcribe_batch greedy, storing through the bridge's sinks); faster-whisper int8 runs
BatchedInferencePipeline (its Silero VAD chunking, greedy) on each channel as decode_audio splits
them. Both on --threads CPU threads, each run once untimed on a second of silence first (one-time
set-up: kernels, the VAD model); wall and CPU time (this process's user + system seconds, less
sensitive to other load on the machine) exclude loading the models. WER is over all legs.
Recordings per CPU-minute over 2 cores is about twice recordings per minute on an idle 2-core machine.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import sys
import tempfile
import time
import wave
from contextlib import redirect_stderr
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np
import torch

import whisper
from audiosocket_bridge.config import BridgeConfig
from audiosocket_bridge.outputs.storage import open_storage
from audiosocket_bridge.recordings import RecordingOptions, transcribe_into_storage
from whisper.audio import SAMPLE_RATE_HZ
from whisper.checkpoint import find_model_package, load_package_files
from whisper.transcribe import transcribe_batch

from ._common import cpu_description, cpu_seconds, pick_prompts, stream_audio, wer

Recording = Tuple[Path, str, str]  # path, left reference, right reference


def make_recordings(folder: Path, count: int, per_leg: int) -> List[Recording]:
    draws = pick_prompts(2 * count, per_leg)
    recordings = []
    for index in range(count):
        left, right = draws[2 * index], draws[2 * index + 1]
        legs = [stream_audio(prompts)[0] for prompts in (left, right)]
        length = max(len(pcm) for pcm in legs)
        left_pcm, right_pcm = (memoryview(pcm.ljust(length, b"\0")).cast("h") for pcm in legs)
        frames = bytearray()
        for a, b in zip(left_pcm, right_pcm):
            frames += a.to_bytes(2, "little", signed=True) + b.to_bytes(2, "little", signed=True)
        path = folder / f"call-{index:03d}.wav"
        with wave.open(str(path), "wb") as out:
            out.setnchannels(2), out.setsampwidth(2), out.setframerate(8000), out.writeframes(bytes(frames))
        recordings.append((path, " ".join(p.text for p in left), " ".join(p.text for p in right)))
    return recordings


class Stopwatch:
    """Wall and CPU seconds (this process's user + system) of a block."""

    def __enter__(self) -> "Stopwatch":
        self.wall_s, self.cpu_s = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *exc_info) -> None:
        self.wall_s, self.cpu_s = time.perf_counter() - self.wall_s, cpu_seconds() - self.cpu_s


def run_ours(recordings: Sequence[Recording], args: argparse.Namespace, folder: Path) -> Tuple[List[str], Stopwatch]:
    torch.set_num_threads(args.threads)
    model = whisper.load_model(args.model, device="cpu")
    settings = BridgeConfig(storage=f"sqlite:///{folder}/recordings.db")
    options = RecordingOptions(batch_size=args.batch_size, language="en")
    transcribe_batch(model, [np.zeros(SAMPLE_RATE_HZ, np.float32)], language="en")  # one-time set-up, untimed
    with Stopwatch() as watch, redirect_stderr(io.StringIO()) as progress:
        outcome = asyncio.run(transcribe_into_storage(settings, options, model, [r[0] for r in recordings]))
    assert outcome.stored == 2 * len(recordings), progress.getvalue()
    uuids = [line.rsplit(" ", 1)[1] for line in progress.getvalue().splitlines() if "stored as call" in line]
    storage = open_storage(settings.storage)
    try:
        return [storage.transcript_text(uuid) or "" for uuid in uuids], watch
    finally:
        storage.close()


def ct2_folder(model_name: str, folder: Path) -> Path:
    """A CTranslate2 model folder faster-whisper can load: the package's, or its parts joined."""
    source = find_model_package(model_name)
    data, config = load_package_files(source)
    target = folder / f"ct2-{model_name}"
    target.mkdir(exist_ok=True)
    (target / "model.bin").write_bytes(data)
    import json

    (target / "config.json").write_text(json.dumps(config))
    package_dir = Path(__import__(source.config[0]).__file__).parent / Path(source.config[1]).parent
    for name in ("tokenizer.json", "vocabulary.json", "vocabulary.txt"):
        if (package_dir / name).exists():
            (target / name).write_bytes((package_dir / name).read_bytes())
    return target


def run_faster_whisper(recordings: Sequence[Recording], args: argparse.Namespace,
                       folder: Path) -> Tuple[List[str], Stopwatch]:
    from faster_whisper import BatchedInferencePipeline, WhisperModel, decode_audio

    model = WhisperModel(str(ct2_folder(args.model, folder)), device="cpu", compute_type="int8",
                         cpu_threads=args.threads)  # fmt: skip
    pipeline = BatchedInferencePipeline(model)
    list(pipeline.transcribe(np.zeros(16000, np.float32), language="en")[0])  # one-time set-up, untimed
    texts: List[str] = []
    with Stopwatch() as watch:
        for path, _, _ in recordings:
            for leg in decode_audio(str(path), split_stereo=True):
                segments, _ = pipeline.transcribe(leg, language="en", batch_size=args.batch_size, beam_size=1,
                                                  temperature=0.0, without_timestamps=True)  # fmt: skip
                texts.append("".join(segment.text for segment in segments))
    return texts, watch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=12)
    parser.add_argument("--prompts-per-leg", type=int, default=5)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-faster-whisper", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        recordings = make_recordings(folder, args.recordings, args.prompts_per_leg)
        references = [text for _, left, right in recordings for text in (left, right)]
        audio_s = sum(wave.open(str(r[0])).getnframes() for r in recordings) / 8000
        print(f"{cpu_description()}, {args.threads} threads; {len(recordings)} stereo recordings, "
              f"{audio_s / 60:.1f} min ({audio_s / len(recordings):.1f} s each), model {args.model}")
        engines = [("ours (transcribe command)", run_ours)]
        if not args.skip_faster_whisper:
            engines.append(("faster-whisper batched int8", run_faster_whisper))
        for name, engine in engines:
            texts, watch = engine(recordings, args, folder)
            print(f"{name}: {len(recordings) / watch.wall_s * 60:.1f} recordings/min, wall {watch.wall_s:.1f} s "
                  f"(RTF {watch.wall_s / audio_s:.3f}), CPU {watch.cpu_s:.1f} s "
                  f"({len(recordings) / watch.cpu_s * 60:.1f} recordings per CPU-minute), "
                  f"WER {100 * wer(references, texts):.2f} %")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
