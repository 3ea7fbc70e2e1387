"""A stored call's transcript as TXT, SRT or WebVTT (written by whisper.writers) or as the
bridge's JSON document (the call, its DTMF digits, and every segment with its words); and the
calls sharing a linkedid (a conversation's legs) as one transcript whose segments name their leg."""
from __future__ import annotations

import io
import json
from dataclasses import replace
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


def leg_label(call: StoredCall) -> str:
    """Who speaks on a leg: the last part of its channel name (Recording/call.wav/caller -> caller,
    PJSIP/alice-00000001 -> alice-00000001), else its UUID."""
    return call.channel.rsplit("/", 1)[-1] if call.channel else call.uuid


def conversation_segments(storage, linkedid: str) -> Optional[list[tuple[StoredCall, StoredSegment]]]:
    """Every spoken segment of the calls sharing ``linkedid``, on the clock of the earliest call,
    in order of start; None if no call has that linkedid."""
    calls = [storage.get_call(uuid) for uuid in storage.linked_calls(linkedid)]
    if not calls:
        return None
    origin = min(call.started_at for call in calls)
    turns = []
    for call in calls:
        offset_s = (call.started_at - origin).total_seconds()
        for s in _spoken(storage.get_segments(call.uuid)):
            turns.append((call, replace(s, start_s=s.start_s + offset_s, end_s=s.end_s + offset_s)))
    return sorted(turns, key=lambda turn: (turn[1].start_s, leg_label(turn[0])))


def export_conversation(storage, linkedid: str, fmt: str) -> Optional[str]:
    """The conversation of the calls sharing ``linkedid`` in ``fmt``: each segment's text begins
    with its leg's label ("[caller] ..."); JSON lists the legs and gives each segment its leg's UUID."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    turns = conversation_segments(storage, linkedid)
    if turns is None:
        return None
    labelled = [replace(s, text=f"[{leg_label(call)}] {s.text.strip()}") for call, s in turns]
    if fmt != "json":
        return to_text(fmt, labelled)
    calls = {call.uuid: call for call, _ in turns}
    document = {
        "linkedid": linkedid,
        "legs": [{"uuid": c.uuid, "speaker": leg_label(c), "channel": c.channel, "started_at": _iso(c.started_at),
                  "ended_at": _iso(c.ended_at)} for c in calls.values()],
        "segments": [{"uuid": call.uuid, "speaker": leg_label(call), "start_s": s.start_s, "end_s": s.end_s,
                      "text": s.text.strip()} for call, s in turns],
        "text": "\n".join(s.text for s in labelled),
    }  # fmt: skip
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
