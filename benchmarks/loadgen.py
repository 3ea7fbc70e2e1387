"""Load generator for the AudioSocket bridge: N concurrent calls as Asterisk places them.

    python -m benchmarks.loadgen --calls 1 4 8 16 --utterances 5      # bridge in-process (tiny.en)
    python -m benchmarks.loadgen --connect 127.0.0.1:8300 --ami-port 5039 \\
        --storage sqlite:///transcripts.db --calls 4                    # against a running bridge

Each call does what the dialplan + app_audiosocket do: `UserEvent(AudioSocketStart, Uuid: ...)` on
AMI, then TCP connect, the UUID message, 20 ms slin frames (320 bytes at 8 kHz) on a real-time
clock -- Asterisk English prompts, a different set per call, each followed by a pause -- and
finally a plain socket close (caller hangs up).

Finals are observed where Asterisk would see them: the bridge's AMI sink logs in to a fake AMI
server (audiosocket_bridge/testing/recording_ami.py) and sends `UserEvent: Transcript` actions; those with
`Final: 1` are timestamped as they arrive. Final latency of an utterance = arrival of the last
final that overlaps its speech (by Start/End, > 0.1 s) minus the time the utterance's last frame
was sent. A call is complete when its `UserEvent: TranscriptEnd` arrives (the bridge sends it
after storing the call's last final).

For a running bridge, start it with the AMI pointed at the load generator's fake AMI, e.g.
`audiosocket-bridge --ami-host 127.0.0.1 --ami-port 5039 --ami-secret s3cret
--storage sqlite:///transcripts.db`, and give the same --storage here to check what it stored.
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import tempfile
import time
import uuid as uuid_lib
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import AsyncIterator, Dict, List, Optional, Sequence

import numpy as np

from audiosocket_bridge.asterisk.ami_sink import AmiConfig
from audiosocket_bridge.audiosocket.settings import SessionSettings
from audiosocket_bridge.bridge import Bridge
from audiosocket_bridge.testing.audiosocket_client import SLIN_KINDS, AudioSocketClient, message
from audiosocket_bridge.testing.fake_ami import transcriber
from audiosocket_bridge.testing.recording_ami import AmiFinal, RecordingAmi
from whisper.streaming.pcm import FRAME_MS, frame_bytes

from ._common import PAUSE_S, cpu_description, machine_speed, pick_prompts, stream_audio, word_errors

AMI_USER, AMI_SECRET = "transcriber", "s3cret"
OVERLAP_S = 0.1  # a final belongs to an utterance it overlaps by more than this
_dial_counter = itertools.count()


# ---------------------------------------------------------------- one call

@dataclass
class CallResult:
    uuid: str
    reference: str
    utterances: int
    completed: bool = False  # TranscriptEnd arrived via AMI
    connected: bool = False
    frames_sent: int = 0
    frames_planned: int = 0
    max_send_lag_s: float = 0.0  # worst lateness of a frame against the real-time schedule
    latencies_s: List[Optional[float]] = field(default_factory=list)  # per utterance; None: no final
    # per utterance: its first partial's arrival minus its first frame's sending; None: no partial
    first_partials_s: List[Optional[float]] = field(default_factory=list)
    hypothesis: str = ""
    errors: int = 0  # word edits vs reference
    ref_words: int = 0
    ami_finals: List[AmiFinal] = field(default_factory=list)
    last_finals: List[Optional[AmiFinal]] = field(default_factory=list)  # per utterance: the final completing it

    @property
    def wer(self) -> float:
        return self.errors / max(self.ref_words, 1)


async def place_call(host: str, port: int, prompts, ami: RecordingAmi, *, pause_s: float = PAUSE_S,
                     sample_rate_hz: int = 8000, start_delay_s: float = 0.0, register: bool = True,
                     end_wait_s: float = 120.0, label: str = "", partials: bool = False) -> CallResult:
    """One call: register on AMI (asking for partial captions with `partials`), stream the prompts
    in real time, hang up, wait for TranscriptEnd."""
    pcm, starts, ends = stream_audio(prompts, pause_s, sample_rate_hz)
    return await play_call(host, port, pcm, starts, ends, " ".join(p.text for p in prompts), ami,
                           sample_rate_hz=sample_rate_hz, start_delay_s=start_delay_s, register=register,
                           end_wait_s=end_wait_s, label=label, partials=partials)


async def play_call(host: str, port: int, pcm: bytes, starts: Sequence[int], ends: Sequence[int], reference: str,
                    ami: RecordingAmi, *, sample_rate_hz: int = 8000, start_delay_s: float = 0.0,
                    register: bool = True, end_wait_s: float = 120.0, label: str = "",
                    partials: bool = False) -> CallResult:
    """One call of the given audio, whose utterances' speech spans 20 ms frames [starts[k], ends[k]]:
    latencies are measured from the sending of each span's last frame."""
    size = frame_bytes(sample_rate_hz)
    n_frames = (len(pcm) + size - 1) // size
    call_uuid = str(uuid_lib.uuid4())
    result = CallResult(call_uuid, reference, len(ends), frames_planned=n_frames)
    await asyncio.sleep(start_delay_s)
    if register:
        channel = f"PJSIP/loadgen{label}-{next(_dial_counter):08x}"
        await asyncio.get_running_loop().run_in_executor(None, ami.register_call, call_uuid, channel, partials)
    client = AudioSocketClient(host, port, call_uuid)
    try:
        await client.connect()
        result.connected = True
    except OSError:
        return result
    kind = SLIN_KINDS[sample_rate_hz]
    last_frames = {end: k for k, end in enumerate(ends)}
    first_frames = {start: k for k, start in enumerate(starts)}
    sent_at: Dict[int, float] = {}  # utterance -> time its last frame was sent
    first_sent_at: Dict[int, float] = {}  # utterance -> time its first frame was sent
    t0 = time.monotonic()
    for n in range(n_frames):
        chunk = pcm[n * size:(n + 1) * size]
        if client.ended or not await client.send_bytes(message(kind, chunk)):
            break
        now = time.monotonic()
        result.frames_sent += 1
        result.max_send_lag_s = max(result.max_send_lag_s, now - (t0 + n * FRAME_MS / 1000))
        if n in last_frames:
            sent_at[last_frames[n]] = now
        if n in first_frames:
            first_sent_at[first_frames[n]] = now
        await asyncio.sleep(max(0.0, t0 + (n + 1) * FRAME_MS / 1000 - time.monotonic()))
    await client.finish("close")
    deadline = time.monotonic() + end_wait_s
    while ami.ended(call_uuid) is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    result.completed = ami.ended(call_uuid) is not None and result.frames_sent == n_frames
    result.ami_finals = ami.finals_of(call_uuid)
    result.hypothesis = " ".join(f.text for f in result.ami_finals if f.text.strip())
    result.errors, result.ref_words = word_errors(result.reference, result.hypothesis)
    _utterance_times(result, ami.partials_of(call_uuid), starts, ends, sent_at, first_sent_at)
    return result


def _overlaps(item, speech) -> bool:
    return min(item.end_s, speech[1]) - max(item.start_s, speech[0]) > OVERLAP_S


def _utterance_times(result: CallResult, partials, starts, ends, sent_at, first_sent_at) -> None:
    """An utterance's finals are those whose [Start, End] overlaps its speech by > OVERLAP_S; the
    last of them to arrive completes it (a final that merges two prompts counts for both). Its
    first partial is the first to arrive that overlaps it."""
    for k in range(len(ends)):
        speech = (starts[k] * FRAME_MS / 1000, (ends[k] + 1) * FRAME_MS / 1000)
        mine = [f for f in result.ami_finals if f.text.strip() and _overlaps(f, speech)]
        last = max(mine, key=lambda f: f.arrived, default=None)
        result.last_finals.append(last)
        result.latencies_s.append(last.arrived - sent_at[k] if last and k in sent_at else None)
        first = min((p.arrived for p in partials if _overlaps(p, speech)), default=None)
        result.first_partials_s.append(first - first_sent_at[k] if first and k in first_sent_at else None)


# ---------------------------------------------------------------- report

@dataclass
class LoadReport:
    n_calls: int
    calls: List[CallResult]
    finals_stored: Optional[int] = None  # None: no storage to compare with
    finals_lost: Optional[int] = None  # stored, but never received by AMI
    finals_mismatched: Optional[int] = None  # same segment, different text (or AMI-only)
    duplicate_finals: int = 0
    wall_s: float = 0.0

    @property
    def utterances(self) -> int:
        return sum(c.utterances for c in self.calls)

    @property
    def latencies_s(self) -> List[float]:
        return [x for c in self.calls for x in c.latencies_s if x is not None]

    @property
    def utterances_with_final(self) -> int:
        return len(self.latencies_s)

    @property
    def calls_completed(self) -> int:
        return sum(c.completed for c in self.calls)

    @property
    def finals_received(self) -> int:
        return sum(len(c.ami_finals) for c in self.calls)

    def percentile(self, q: float) -> float:
        values = self.latencies_s
        return float(np.percentile(values, q)) if values else float("nan")

    @property
    def p50_s(self) -> float:
        return self.percentile(50)

    @property
    def p95_s(self) -> float:
        return self.percentile(95)

    @property
    def first_partial_p50_s(self) -> float:
        values = [x for c in self.calls for x in c.first_partials_s if x is not None]
        return float(np.percentile(values, 50)) if values else float("nan")

    @property
    def wer(self) -> float:
        return sum(c.errors for c in self.calls) / max(sum(c.ref_words for c in self.calls), 1)

    @property
    def max_call_wer(self) -> float:
        return max((c.wer for c in self.calls), default=float("nan"))

    @property
    def max_send_lag_s(self) -> float:
        return max((c.max_send_lag_s for c in self.calls), default=0.0)

    HEADER = (f"{'calls':>5} {'done':>5} {'utt w/ final':>12} {'p50 s':>6} {'p95 s':>6} {'max s':>6} "
              f"{'WER':>6} {'worst call':>10} {'AMI finals':>10} {'stored':>6} {'lost':>4} {'mism':>4} "
              f"{'dup':>3} {'send lag s':>10} {'1st partial p50 s':>17}")

    def row(self) -> str:
        stored = "-" if self.finals_stored is None else self.finals_stored
        lost = "-" if self.finals_lost is None else self.finals_lost
        mism = "-" if self.finals_mismatched is None else self.finals_mismatched
        top = max(self.latencies_s, default=float("nan"))
        return (f"{self.n_calls:>5} {self.calls_completed:>2}/{len(self.calls):<2} "
                f"{self.utterances_with_final:>7}/{self.utterances:<4} {self.p50_s:>6.2f} {self.p95_s:>6.2f} "
                f"{top:>6.2f} {self.wer:>6.1%} {self.max_call_wer:>10.1%} {self.finals_received:>10} "
                f"{stored:>6} {lost:>4} {mism:>4} {self.duplicate_finals:>3} {self.max_send_lag_s:>10.3f} "
                f"{self.first_partial_p50_s:>17.2f}")


def compare_with_storage(report: LoadReport, storage) -> None:
    """Stored finals (segment, text) per call vs those AMI received; fills the report's counts."""
    stored_total = lost = mismatched = 0
    for call in report.calls:
        stored = {s.index: " ".join(s.text.split()) for s in storage.get_segments(call.uuid)}
        received = {f.segment: " ".join(f.text.split()) for f in call.ami_finals}
        stored_total += len(stored)
        lost += sum(1 for seg in stored if seg not in received)
        mismatched += sum(1 for seg, text in received.items() if stored.get(seg) != text)
    report.finals_stored, report.finals_lost, report.finals_mismatched = stored_total, lost, mismatched


async def run_load(host: str, port: int, n_calls: int, utterances_per_call: int, pause_s: float = PAUSE_S,
                   sample_rate_hz: int = 8000, *, ami: RecordingAmi, storage=None, shift: int = 0,
                   stagger_s: float = 0.37, register: bool = True, end_wait_s: float = 120.0,
                   partials: bool = False) -> LoadReport:
    """N concurrent calls against the bridge at host:port whose AMI sink is logged in to `ami`.

    `storage` (the bridge's, or another handle on the same database) enables the stored-vs-AMI
    check. Calls start `stagger_s / n_calls` apart so they don't all share frame boundaries.
    """
    sets = pick_prompts(n_calls, utterances_per_call, shift)
    with ami._lock:
        duplicates_before = ami.duplicate_finals
    started = time.monotonic()
    calls = await asyncio.gather(*(
        place_call(host, port, prompts, ami, pause_s=pause_s, sample_rate_hz=sample_rate_hz,
                   start_delay_s=i * stagger_s / max(1, n_calls), register=register,
                   end_wait_s=end_wait_s, label=str(i), partials=partials)
        for i, prompts in enumerate(sets)))
    report = LoadReport(n_calls, list(calls), wall_s=time.monotonic() - started)
    with ami._lock:
        report.duplicate_finals = ami.duplicate_finals - duplicates_before
    if storage is not None:
        compare_with_storage(report, storage)
    return report


# ---------------------------------------------------------------- in-process bridge

@asynccontextmanager
async def in_process_bridge(engine, ami: RecordingAmi, db_url: str, *, max_calls: int = 200,
                            registration_wait_s: float = 1.0,
                            partials: bool = False) -> AsyncIterator[Bridge]:
    """The bridge as the command line assembles it, on a free port, with its AMI sink logged in
    to `ami` before the first call is placed."""
    settings = SessionSettings(registration_wait_s=registration_wait_s, partials=partials,
                               shutdown_deadline_s=60)
    ami_config = AmiConfig(host="127.0.0.1", port=ami.port, username=AMI_USER, secret=AMI_SECRET,
                           partials=partials)
    async with Bridge(engine, storage_url=db_url, listen=("127.0.0.1", 0), max_calls=max_calls,
                      session=settings, ami=ami_config) as bridge:
        logged_in = await asyncio.get_running_loop().run_in_executor(
            None, bridge.ami_sink.wait_connected, 10)
        if not logged_in:
            raise RuntimeError(f"AMI sink did not log in to 127.0.0.1:{ami.port}")
        yield bridge


def load_engine(model_name: str = "tiny.en", threads: Optional[int] = None, workers: int = 0,
                engine_options: Sequence[str] = (), quantize: bool = False):
    """The engine in this process, or (`workers` > 0) a pool of engine processes as the bridge runs;
    `engine_options` are NAME=VALUE texts, as the bridge's --engine-option takes them."""
    import torch

    import whisper
    from whisper.streaming import EngineOptions, StreamingEngine
    from whisper.streaming.options import parse_settings, with_options

    options = with_options(EngineOptions(), parse_settings(engine_options))
    if workers:
        from whisper.streaming.pool import EnginePool

        pool = EnginePool(model_name, workers, threads=threads or 1, options=options, quantize=quantize)
        pool.start()
        return pool
    if threads:
        torch.set_num_threads(threads)
    model = whisper.load_model(model_name, device="cpu", quantize=quantize)
    engine = StreamingEngine(model, options)
    engine.start()
    return engine


def _engine_option(text: str) -> str:
    """NAME=VALUE, checked as the bridge checks it (one line for argparse if it is wrong)."""
    from whisper.streaming import EngineOptions
    from whisper.streaming.options import parse_settings, with_options

    try:
        with_options(EngineOptions(), parse_settings([text]))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """--engine-option and --quantize, as the bridge takes them (docs/administrators.rst)."""
    parser.add_argument("--engine-option", action="append", default=[], metavar="NAME=VALUE", type=_engine_option,
                        help="an engine option, e.g. max_batch=16 (repeatable)")
    parser.add_argument("--quantize", action="store_true", help="int8 decoder linear layers (CPU)")


# ---------------------------------------------------------------- CLI

def _details(report: LoadReport) -> None:
    for call in report.calls:
        missing = [k for k, x in enumerate(call.latencies_s) if x is None]
        if missing or call.errors:
            print(f"  call {call.uuid}: WER {call.wer:.1%}, utterances without final {missing}\n"
                  f"    ref: {call.reference}\n    hyp: {call.hypothesis}\n    finals: "
                  + "; ".join(f"#{f.segment} {f.start_s:.2f}-{f.end_s:.2f} {f.text!r}" for f in call.ami_finals),
                  flush=True)


async def _main_async(args) -> None:
    ami = RecordingAmi({AMI_USER: transcriber(AMI_SECRET)})
    ami.port = args.ami_port
    ami.start()
    print(f"fake AMI on 127.0.0.1:{ami.port}", flush=True)
    print(LoadReport.HEADER, flush=True)
    try:
        if args.connect:
            from audiosocket_bridge.audiosocket.server import DEFAULT_PORT
            from audiosocket_bridge.values import split_host_port
            from audiosocket_bridge.outputs.storage import open_storage

            host, port = split_host_port(args.connect, DEFAULT_PORT)
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: ami.wait_for(lambda f: f.logged_in_sessions() > 0, 60))
            storage = open_storage(args.storage) if args.storage else None
            for shift, n in enumerate(args.calls):
                report = await run_load(host, port, n, args.utterances, args.pause, args.rate, ami=ami,
                                        storage=storage, shift=shift, partials=args.partials)
                print(report.row(), flush=True)
            if storage:
                storage.close()
            return
        engine = load_engine(args.model, args.threads, engine_options=args.engine_option, quantize=args.quantize)
        try:
            with tempfile.TemporaryDirectory(prefix="loadgen-") as tmp:
                for shift, n in enumerate(args.calls):
                    db_url = f"sqlite:///{tmp}/calls-{n}.db"
                    async with in_process_bridge(engine, ami, db_url, partials=args.partials) as bridge:
                        report = await run_load(*bridge.address, n, args.utterances, args.pause, args.rate,
                                                ami=ami, storage=bridge.storage, shift=shift,
                                                partials=args.partials)
                    print(report.row(), flush=True)
                    if args.verbose:
                        _details(report)
        finally:
            engine.stop()
    finally:
        ami.stop()


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--utterances", type=int, default=5, help="prompts per call")
    parser.add_argument("--pause", type=float, default=PAUSE_S, help="silence after each prompt, s")
    parser.add_argument("--rate", type=int, default=8000, choices=sorted(SLIN_KINDS), help="slin rate")
    parser.add_argument("--connect", metavar="HOST:PORT", help="a running bridge instead of an in-process one")
    parser.add_argument("--ami-port", type=int, default=0,
                        help="fake AMI port (0: any; give one with --connect, e.g. 5039)")
    parser.add_argument("--storage", metavar="URL", help="with --connect: the bridge's storage, to compare")
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (in-process bridge)")
    parser.add_argument("--partials", action="store_true",
                        help="calls ask for partial captions (as live-caption set-ups do): the engine "
                             "decodes them too, and the first partial's time is measured")
    add_engine_arguments(parser)
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--verbose", action="store_true", help="per call: utterances without final, texts")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(f"CPU: {cpu_description()}", flush=True)
    print(machine_speed(args.model), flush=True)
    print(f"loadgen: pid {os.getpid()}, {os.cpu_count()} CPUs, model {args.model}, "
          f"{args.utterances} utterances/call, pause {args.pause} s, {args.rate} Hz", flush=True)
    asyncio.run(_main_async(args))


if __name__ == "__main__":
    main()
