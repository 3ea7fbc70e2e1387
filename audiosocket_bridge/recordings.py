"""Recorded calls into the bridge's storage: `audiosocket-bridge transcribe FILE...`.

Each recording becomes a stored call, or two for a stereo one (MixMonitor's D option: one leg per
channel, each with its speaker label, both legs of one conversation). Its finals are redacted as a
live call's are (``CallRedactor`` with the bridge's policy) and go through the sink chain
``Bridge`` assembles for live calls (storage, the webhook's queue, phrase alerts ...), so retention,
search, export and the webhook treat them as live calls.

The pure part here plans the calls (UUIDs, linkedid, speakers, times) and turns a transcription
result into finals; ``store_recordings`` runs it on a model and the bridge's sinks.
"""
from __future__ import annotations

import hashlib
import re
import socket
import sys
import uuid as uuid_lib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Optional, Sequence, TextIO

from whisper.policy import rejection_reason
from whisper.streaming.types import TranscriptEvent

from .config import BridgeConfig
from .outputs.sinks import CallInfo
from .redaction import CallRedactor
from .registrations import CallOptions, Registration

# uuid5 namespace of the UUIDs derived from a recording's contents (re-reading a file gives the same call).
RECORDING_NAMESPACE = uuid_lib.UUID("6f1d3c52-8a4e-5b0f-9a51-2f0d8c7e4b19")
ASTERISK_ID = re.compile(r"\d+\.\d+")  # a uniqueid/linkedid as Asterisk names recordings: 1733590000.42
DEFAULT_SPEAKERS = ("caller", "callee")  # MixMonitor D on the caller's channel: what it says, what it hears
END_REASON = "recording"
MAX_CHANNELS = 2


class RecordingError(ValueError):
    """A recording or an option that cannot be stored as calls (one line, naming the file)."""


@dataclass(frozen=True)
class RecordingOptions:
    uuid: Optional[str] = None  # the call's UUID (one file only); default derived from the contents
    linkedid: Optional[str] = None  # default: the file name if it is an Asterisk id, else (stereo) the UUID
    speakers: tuple[str, str] = DEFAULT_SPEAKERS  # labels of a stereo recording's left and right legs
    language: Optional[str] = None
    redact: str = "pci"  # redaction.py policy, as the bridge's --redact
    batch_size: int = 8  # legs decoded together (those of 30 s or less)


@dataclass(frozen=True)
class Leg:
    """One call to store: a mono recording, or one channel of a stereo one."""

    path: Path
    channel: int  # index in the file
    call: CallInfo


def recording_uuid(path: Path, given: Optional[str]) -> str:
    if given:
        return str(uuid_lib.UUID(given.strip()))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return str(uuid_lib.uuid5(RECORDING_NAMESPACE, digest))


def plan_legs(path: Path, n_channels: int, rate_hz: int, duration_s: float, options: RecordingOptions,
              ended_at: datetime) -> list[Leg]:
    """The calls a recording is stored as; it ended at ``ended_at`` (its file's modification time)."""
    if n_channels > MAX_CHANNELS:
        raise RecordingError(f"{path}: {n_channels} channels; a recording is mono or stereo (one leg per channel)")
    base = recording_uuid(path, options.uuid)
    linkedid = options.linkedid or (path.stem if ASTERISK_ID.fullmatch(path.stem) else None)
    started_at = ended_at - timedelta(seconds=duration_s)
    legs = []
    for channel in range(n_channels):
        stereo = n_channels == 2
        uuid = str(uuid_lib.uuid5(uuid_lib.UUID(base), f"leg-{channel}")) if stereo else base
        leg_linkedid = linkedid or (base if stereo else None)
        call_options = CallOptions(language=options.language, speaker=options.speakers[channel] if stereo else None,
                                   conversation=leg_linkedid if stereo else None)  # fmt: skip
        registration = Registration(uuid, channel=f"Recording/{path.name}", linkedid=leg_linkedid,
                                    options=call_options)  # fmt: skip
        call = CallInfo(uuid=uuid, peer=f"recording:{path.name}", started_at=started_at, sample_rate_hz=rate_hz,
                        registration=registration, ended_at=ended_at, redaction=options.redact,
                        end_reason=END_REASON)  # fmt: skip
        legs.append(Leg(path, channel, call))
    return legs


@dataclass(frozen=True)
class _Decoded:
    """A segment as the live engine's no-speech and loop guards read a decoding result."""

    text: str
    language: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    language_probs: None = None
    loops: tuple = ()  # transcribe() cut its loops while decoding; a segment keeps none


def finals(uuid: str, result: dict) -> list[TranscriptEvent]:
    """A transcription result's segments as the finals of call ``uuid``, less those the live
    engine's guards would drop (policy.rejection_reason: "you" on silence, ". . ." on line noise,
    loops), which a whole-window decode keeps."""
    language = result.get("language") or ""
    kept = []
    for segment in result["segments"]:
        decoded = _Decoded(segment["text"], language, float(segment.get("avg_logprob", 0.0)),
                           float(segment.get("no_speech_prob", 0.0)), float(segment.get("compression_ratio", 0.0)))
        if rejection_reason(decoded, float(segment["end"]) - float(segment["start"])) is None:
            kept.append((segment, decoded))
    return [
        TranscriptEvent(stream_id=uuid, kind="final", segment_index=index, text=segment["text"],
                        start_s=float(segment["start"]), end_s=float(segment["end"]), language=language,
                        avg_logprob=decoded.avg_logprob, no_speech_prob=decoded.no_speech_prob)
        for index, (segment, decoded) in enumerate(kept)
    ]  # fmt: skip


def parse_speakers(text: str) -> tuple[str, str]:
    labels = tuple(label.strip() for label in text.split(","))
    if len(labels) != 2 or not all(labels):
        raise RecordingError(f"--speakers wants two labels, left and right (e.g. caller,agent), not {text!r}")
    return labels  # type: ignore[return-value]


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)


def read_legs(path: Path, options: RecordingOptions):
    """(legs, their 16 kHz samples) of one recording."""
    from whisper.audio import AudioError, read_audio, resample

    try:
        samples, rate_hz = read_audio(path)
    except (AudioError, OSError) as error:
        raise RecordingError(str(error)) from error
    legs = plan_legs(path, samples.shape[1], rate_hz, len(samples) / rate_hz, options, _mtime(path))
    return legs, [resample(samples[:, leg.channel], rate_hz) for leg in legs]


@dataclass
class Outcome:
    stored: int = 0  # calls stored
    skipped: int = 0  # calls already in storage
    failed: int = 0  # recordings that could not be read


async def store_recordings(paths: Sequence[Path], options: RecordingOptions, model, sinks, storage,
                           progress: Optional[TextIO] = None, transcribe: Optional[Callable] = None) -> Outcome:
    """Transcribe each recording and store its calls through ``sinks``, ``options.batch_size`` legs
    decoded together, one progress line per call on ``progress``. A call already stored (the same
    file again derives the same UUID) is skipped; a file that cannot be read is reported and skipped."""
    outcome, pending, progress = Outcome(), [], progress or sys.stderr
    for number, path in enumerate(paths, start=1):
        prefix = f"[{number}/{len(paths)}] {path}"
        try:
            legs, audio = read_legs(Path(path), options)
        except RecordingError as error:
            outcome.failed += 1
            print(f"[{number}/{len(paths)}] error: {error}", file=progress)
            legs, audio = [], []
        for leg, samples in zip(legs, audio):
            if storage.get_call(leg.call.uuid) is not None:
                outcome.skipped += 1
                print(f"{prefix}{_label(leg)}: call {leg.call.uuid} is already stored; skipped", file=progress)
            else:
                pending.append((leg, samples, prefix))
        if pending and (len(pending) >= options.batch_size or number == len(paths)):
            outcome.stored += await _store_batch(pending, options, model, sinks, transcribe, progress)
            pending = []
    return outcome


async def _store_batch(pending: list, options: RecordingOptions, model, sinks, transcribe, progress: TextIO) -> int:
    if transcribe is None:
        from whisper.transcribe import transcribe_batch as transcribe
    results = transcribe(model, [samples for _, samples, _ in pending], batch_size=options.batch_size,
                         language=options.language)  # fmt: skip
    for (leg, _, prefix), result in zip(pending, results):
        events = finals(leg.call.uuid, result)
        await _store(leg, events, sinks)
        print(f"{prefix}{_label(leg)}: {len(events)} final(s) stored as call {leg.call.uuid}", file=progress)
    return len(pending)


def _label(leg: Leg) -> str:
    speaker = leg.call.registration.options.speaker
    return f" ({speaker})" if speaker else ""


async def _store(leg: Leg, events: Sequence[TranscriptEvent], sinks) -> None:
    """As a live call goes to the sinks: started, its finals redacted, ended. The whole recording is
    known, so a final the redactor holds (a card number may go on) waits for the next, not a timer."""
    call = replace(leg.call, ended_at=None, end_reason=None)
    redactor = CallRedactor(call.redaction)
    await sinks.call_started(call)
    for event in events:
        for redacted in redactor.final(event, event.end_s):
            await sinks.transcript(call, redacted)
    for redacted in redactor.flush():
        await sinks.transcript(call, redacted)
    call.ended_at, call.end_reason = leg.call.ended_at, leg.call.end_reason
    await sinks.call_ended(call)


def recordings_config(settings: BridgeConfig) -> BridgeConfig:
    """The bridge's settings for storing recordings: its storage and webhook, no servers (no AMI
    captions, FastAGI or metrics: there is no live channel to tell)."""
    return replace(settings, ami_host=None, ami=(), ami_servers=(), agi_listen=None, metrics_listen=None,
                   bridge_id=settings.bridge_id or f"{socket.gethostname()}:recordings")  # fmt: skip


async def transcribe_into_storage(settings: BridgeConfig, options: RecordingOptions, model,
                                  paths: Sequence[Path]) -> Outcome:
    """``store_recordings`` through the sinks of a bridge built from ``settings``, the same chain,
    in the same order, as its live calls'. Of the bridge's parts only its storage writer runs (as
    ``Bridge.start`` starts it first; what the database does not take in time is spooled for the
    next run): no server listens."""
    from .bridge import Bridge

    bridge = Bridge.from_config(recordings_config(settings), engine=None)
    bridge.storage_sink.start()
    try:
        return await store_recordings(paths, options, model, bridge.sinks, bridge.storage)
    finally:
        await bridge.sinks.close()
