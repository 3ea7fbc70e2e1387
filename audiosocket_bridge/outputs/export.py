"""A stored call's transcript as TXT, SRT or WebVTT (written by whisper.writers) or as the
bridge's JSON document (the call, its DTMF digits, and every segment with its words).

Exports are streamed: write_call() reads the segments a batch at a time
(SqlStorage.iter_segments) and writes each as it comes, so a long call's export never sits in
memory whole (the webhook writes it to a temporary file; the CLI to its output)."""
from __future__ import annotations

import io
import json
from typing import Callable, Iterable, Iterator, Optional, TextIO

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


def _iso(value) -> Optional[str]:
    return value.isoformat() if value else None


def _segment_document(s: StoredSegment) -> dict:
    return {"index": s.index, "start_s": s.start_s, "end_s": s.end_s, "text": s.text.strip(),
            "language": s.language, "avg_logprob": s.avg_logprob,
            "words": [{"text": w.text, "start_s": w.start_s, "end_s": w.end_s,
                       "probability": w.probability} for w in s.words]}


def write_json(call: StoredCall, segments: Callable[[], Iterable[StoredSegment]],
               out: TextIO) -> None:
    """The JSON document, one segment per line. `segments()` is read twice: the segments, then
    the joined text."""
    head = {"uuid": call.uuid, "channel": call.channel, "started_at": _iso(call.started_at),
            "ended_at": _iso(call.ended_at), "end_reason": call.end_reason,
            "language": call.language,
            "dtmf": [{"time_s": t, "digit": d} for t, d in call.dtmf]}
    out.write(json.dumps(head, ensure_ascii=False)[:-1] + ',\n  "segments": [')
    for number, segment in enumerate(segments()):
        out.write(("," if number else "") + "\n    ")
        out.write(json.dumps(_segment_document(segment), ensure_ascii=False))
    out.write('\n  ],\n  "text": "')
    for number, segment in enumerate(_spoken(segments())):
        out.write((" " if number else "") + json.dumps(segment.text.strip(), ensure_ascii=False)[1:-1])
    out.write('"\n}\n')


def write_call(storage, uuid: str, fmt: str, out: TextIO) -> bool:
    """Writes the call's transcript in `fmt` (one of FORMATS) to `out`; False if storage does not
    know the call."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    call = storage.get_call(uuid)
    if call is None:
        return False
    if fmt == "json":
        write_json(call, lambda: storage.iter_segments(uuid), out)
    else:
        write_text(fmt, storage.iter_segments(uuid), out)
    return True


def export_call(storage, uuid: str, fmt: str) -> Optional[str]:
    """The call's transcript in `fmt` as one string (for what is small), or None if storage does
    not know it."""
    out = io.StringIO()
    return out.getvalue() if write_call(storage, uuid, fmt, out) else None
