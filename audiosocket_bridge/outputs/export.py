"""Per-call transcript export to TXT, SRT, WebVTT or JSON."""
from __future__ import annotations

import json
from typing import Callable, Optional, Sequence

from whisper.writers import format_timestamp as whisper_timestamp

from .storage import StoredCall, StoredSegment

FORMATS = ("txt", "srt", "vtt", "json")


def format_timestamp(seconds: float, decimal_marker: str = ".", always_hours: bool = True) -> str:
    """HH:MM:SS.mmm (SRT uses ',' as the decimal marker); a negative time shows as zero."""
    return whisper_timestamp(max(0.0, seconds), always_include_hours=always_hours, decimal_marker=decimal_marker)


def _spoken(segments: Sequence[StoredSegment]) -> list[StoredSegment]:
    return [s for s in segments if s.text.strip()]


def to_txt(call: StoredCall, segments: Sequence[StoredSegment]) -> str:
    return "".join(f"{s.text.strip()}\n" for s in _spoken(segments))


def to_srt(call: StoredCall, segments: Sequence[StoredSegment]) -> str:
    blocks = [
        f"{n}\n{format_timestamp(s.start_s, ',')} --> {format_timestamp(s.end_s, ',')}\n{s.text.strip()}\n"
        for n, s in enumerate(_spoken(segments), start=1)
    ]
    return "\n".join(blocks)


def to_vtt(call: StoredCall, segments: Sequence[StoredSegment]) -> str:
    cues = [
        f"{format_timestamp(s.start_s)} --> {format_timestamp(s.end_s)}\n{s.text.strip()}\n"
        for s in _spoken(segments)
    ]
    return "WEBVTT\n\n" + "\n".join(cues)


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
        "dtmf": [{"time_s": t, "digit": d} for t, d in call.dtmf],
        "segments": [
            {"index": s.index, "start_s": s.start_s, "end_s": s.end_s, "text": s.text.strip(),
             "language": s.language, "avg_logprob": s.avg_logprob}
            for s in segments
        ],
        "text": " ".join(s.text.strip() for s in _spoken(segments)),
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


_WRITERS: dict[str, Callable[[StoredCall, Sequence[StoredSegment]], str]] = {
    "txt": to_txt, "srt": to_srt, "vtt": to_vtt, "json": to_json,
}


def export_call(storage, uuid: str, fmt: str) -> Optional[str]:
    """The call's transcript in `fmt`, or None if storage does not know the call."""
    writer = _WRITERS[fmt]
    call = storage.get_call(uuid)
    if call is None:
        return None
    return writer(call, storage.get_segments(uuid))
