"""A stored call's transcript as TXT, SRT or WebVTT (written by whisper.writers) or as the
bridge's JSON document (the call, its DTMF digits, and every segment with its words); and a
conversation (the legs of one bridged call) as one transcript with speakers.

Exports are streamed: write_call() reads the segments a batch at a time
(SqlStorage.iter_segments) and writes each as it comes, so a long call's export never sits in
memory whole (the webhook writes it to a temporary file; the CLI to its output)."""
from __future__ import annotations

import dataclasses
import io
import json
from typing import Callable, Iterable, Iterator, Optional, Sequence, TextIO

from whisper.writers import WriteSRT, WriteTXT, WriteVTT

from .storage import StoredCall, StoredSegment

FORMATS = ("txt", "srt", "vtt", "json")


class _WebVttWithHours(WriteVTT):
    always_include_hours = True  # the export has always written HH:MM:SS.mmm


_WRITERS = {"txt": WriteTXT, "srt": WriteSRT, "vtt": _WebVttWithHours}


def _spoken(segments: Iterable[StoredSegment]) -> Iterator[StoredSegment]:
    return (s for s in segments if s.text.strip())


def _whisper_segments(segments: Iterable[StoredSegment]) -> Iterator[dict]:
    """The spoken segments in the shape of whisper's transcribe() result, for its writers; a time
    before the call's start (pre-roll) shows as zero."""
    return ({"start": max(0.0, s.start_s), "end": max(0.0, s.end_s), "text": s.text}
            for s in _spoken(segments))


class _WithoutLastBlankLine:
    """Writes through, one character behind: whisper's writers end every cue with a blank line;
    an export has none after its last cue."""

    def __init__(self, out: TextIO) -> None:
        self.out, self.held, self.tail = out, "", ""

    def write(self, text: str) -> None:
        if text:
            self.out.write(self.held + text[:-1])
            self.held = text[-1]
            self.tail = (self.tail + text)[-2:]

    def finish(self, after_cues: bool) -> None:
        if not (after_cues and self.tail == "\n\n"):
            self.out.write(self.held)


def write_text(fmt: str, segments: Iterable[StoredSegment], out: TextIO) -> None:
    """TXT, SRT or VTT."""
    trimmed, cues = _WithoutLastBlankLine(out), [0]

    def counted() -> Iterator[dict]:
        for segment in _whisper_segments(segments):
            cues[0] += 1
            yield segment
    _WRITERS[fmt](".").write_result({"segments": counted()}, trimmed)
    trimmed.finish(after_cues=cues[0] > 0)


def to_text(fmt: str, segments: Iterable[StoredSegment]) -> str:
    out = io.StringIO()
    write_text(fmt, segments, out)
    return out.getvalue()


def _iso(value) -> Optional[str]:
    return value.isoformat() if value else None


def _segment_document(s: StoredSegment) -> dict:
    return {"index": s.index, "start_s": s.start_s, "end_s": s.end_s, "text": s.text.strip(),
            "language": s.language, "avg_logprob": s.avg_logprob,
            "words": [{"text": w.text, "start_s": w.start_s, "end_s": w.end_s,
                       "probability": w.probability} for w in s.words]}


def write_json(call: StoredCall, segments: Callable[[], Iterable[StoredSegment]],
               out: TextIO, alerts: Sequence = ()) -> None:
    """The JSON document, one segment per line. `segments()` is read twice: the segments, then
    the joined text."""
    head = {"uuid": call.uuid, "channel": call.channel, "started_at": _iso(call.started_at),
            "ended_at": _iso(call.ended_at), "end_reason": call.end_reason,
            "language": call.language, "redaction": call.redaction, "speaker": call.speaker,
            "conversation": call.conversation,
            "dtmf": [{"time_s": t, "digit": d} for t, d in call.dtmf]}
    out.write(json.dumps(head, ensure_ascii=False)[:-1] + ',\n  "segments": [')
    for number, segment in enumerate(segments()):
        out.write(("," if number else "") + "\n    ")
        out.write(json.dumps(_segment_document(segment), ensure_ascii=False))
    out.write('\n  ],\n  "text": "')
    for number, segment in enumerate(_spoken(segments())):
        out.write((" " if number else "") + json.dumps(segment.text.strip(), ensure_ascii=False)[1:-1])
    found = [{"segment": a.segment_index, "rule": a.rule, "matched": a.matched,
              "start_s": a.start_s, "end_s": a.end_s} for a in alerts]
    out.write('",\n  "alerts": ' + json.dumps(found, ensure_ascii=False) + "\n}\n")


def write_call(storage, uuid: str, fmt: str, out: TextIO) -> bool:
    """Writes the call's transcript in `fmt` (one of FORMATS) to `out`; False if storage does not
    know the call."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    call = storage.get_call(uuid)
    if call is None:
        return False
    if fmt == "json":
        from .search import call_alerts

        write_json(call, lambda: storage.iter_segments(uuid), out, call_alerts(storage, uuid))
    else:
        write_text(fmt, storage.iter_segments(uuid), out)
    return True


def export_call(storage, uuid: str, fmt: str) -> Optional[str]:
    """The call's transcript in `fmt` as one string (for what is small), or None if storage does
    not know it."""
    out = io.StringIO()
    return out.getvalue() if write_call(storage, uuid, fmt, out) else None


# ------------------------------------------------------------------ conversations

def speaker_label(call: StoredCall) -> str:
    return call.speaker or call.channel or call.uuid[:8]


def conversation_turns(calls: Sequence[StoredCall],
                       segments_of: dict[str, Sequence[StoredSegment]]) -> list[tuple[StoredCall, StoredSegment]]:
    """Every leg's spoken finals on one clock (seconds from the first leg's start), by time."""
    if not calls:
        return []
    zero = min(call.started_at for call in calls)
    turns = []
    for call in calls:
        shift_s = (call.started_at - zero).total_seconds()
        for s in _spoken(segments_of[call.uuid]):
            turns.append((call, dataclasses.replace(s, start_s=s.start_s + shift_s,
                                                    end_s=s.end_s + shift_s)))
    turns.sort(key=lambda turn: (turn[1].start_s, turn[1].end_s, turn[0].uuid))
    return turns


def conversation_json(conversation: str, calls: Sequence[StoredCall],
                      turns: Sequence[tuple[StoredCall, StoredSegment]]) -> dict:
    return {
        "conversation": conversation,
        "started_at": _iso(min(c.started_at for c in calls)) if calls else None,
        "calls": [{"uuid": c.uuid, "speaker": c.speaker, "channel": c.channel,
                   "started_at": _iso(c.started_at), "ended_at": _iso(c.ended_at)} for c in calls],
        "segments": [{"call": c.uuid, "speaker": speaker_label(c), "index": s.index,
                      "start_s": s.start_s, "end_s": s.end_s, "text": s.text.strip()}
                     for c, s in turns],
    }


def export_conversation(storage, conversation: str, fmt: str) -> Optional[str]:
    """The legs of `conversation` (calls stored with that conversation id) as one transcript, its
    cues labelled with each leg's speaker; None if no call has that id."""
    from .search import conversation_calls

    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    calls = conversation_calls(storage, conversation)
    if not calls:
        return None
    turns = conversation_turns(calls, {c.uuid: storage.get_segments(c.uuid) for c in calls})
    if fmt == "json":
        return json.dumps(conversation_json(conversation, calls, turns), indent=2,
                          ensure_ascii=False) + "\n"
    labelled = [dataclasses.replace(s, text=f"{speaker_label(c)}: {s.text.strip()}") for c, s in turns]
    return to_text(fmt, labelled)
