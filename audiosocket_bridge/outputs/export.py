"""A stored call's transcript as TXT, SRT or WebVTT (written by whisper.writers) or as the
bridge's JSON document (the call, its DTMF digits, and every segment with its words)."""
from __future__ import annotations

import io
import json
from typing import Optional, Sequence

from whisper.writers import WriteSRT, WriteTXT, WriteVTT

from .storage import StoredCall, StoredSegment, joined_text

FORMATS = ("txt", "srt", "vtt", "json")


class _WebVttWithHours(WriteVTT):
    always_include_hours = True  # the export has always written HH:MM:SS.mmm


_WRITERS = {"txt": WriteTXT, "srt": WriteSRT, "vtt": _WebVttWithHours}


def _spoken(segments: Sequence[StoredSegment]) -> list[StoredSegment]:
    return [s for s in segments if s.text.strip()]


def whisper_result(segments: Sequence[StoredSegment]) -> dict:
    """The spoken segments in the shape of whisper's transcribe() result, for its writers; a time
    before the call's start (pre-roll) shows as zero."""
    spoken = _spoken(segments)
    return {"text": joined_text(s.text for s in spoken),
            "segments": [{"start": max(0.0, s.start_s), "end": max(0.0, s.end_s), "text": s.text}
                         for s in spoken]}


def to_text(fmt: str, segments: Sequence[StoredSegment]) -> str:
    """TXT, SRT or VTT. Whisper's writers end every cue with a blank line; an export has none
    after its last cue."""
    result = whisper_result(segments)
    out = io.StringIO()
    _WRITERS[fmt](".").write_result(result, out)
    text = out.getvalue()
    return text[:-1] if result["segments"] and text.endswith("\n\n") else text


def _iso(value) -> Optional[str]:
    return value.isoformat() if value else None


def to_json(call: StoredCall, segments: Sequence[StoredSegment]) -> str:
    document = {
        "uuid": call.uuid,
        "channel": call.channel,
        "started_at": _iso(call.started_at),
        "ended_at": _iso(call.ended_at),
        "end_reason": call.end_reason,
        "language": call.language,
        "redaction": call.redaction,
        "dtmf": [{"time_s": t, "digit": d} for t, d in call.dtmf],
        "segments": [
            {"index": s.index, "start_s": s.start_s, "end_s": s.end_s, "text": s.text.strip(),
             "language": s.language, "avg_logprob": s.avg_logprob,
             "words": [{"text": w.text, "start_s": w.start_s, "end_s": w.end_s,
                        "probability": w.probability} for w in s.words]}
            for s in segments
        ],
        "text": whisper_result(segments)["text"],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def export_call(storage, uuid: str, fmt: str) -> Optional[str]:
    """The call's transcript in `fmt` (one of FORMATS), or None if storage does not know it."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    call = storage.get_call(uuid)
    if call is None:
        return None
    segments = storage.get_segments(uuid)
    return to_json(call, segments) if fmt == "json" else to_text(fmt, segments)
