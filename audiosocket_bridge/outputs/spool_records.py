"""The storage writes of a call as JSON-able records (outputs/spool.py keeps them), and back.

A record is {"op": "start" | "final" | "alert" | "end", "uuid", "session", ...}; `session` tells two
AudioSocket() sessions of one UUID apart (an IVR loop). A final carries its call's segment
`offset` when it was known as the final was taken (the session's start was in the database), so
a write replayed after a restart is numbered as its first try would have been. A final keeps
only TranscriptEvent's own fields: the text as storage gets it (redacted), never an IVR answer's
clear channel_text (redaction.RedactedEvent).
"""
from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Iterable, Optional

from whisper.streaming.types import TranscriptEvent, Word

from ..registrations import CallOptions, Registration
from .sinks import CallInfo

START, FINAL, ALERT, END = "start", "final", "alert", "end"


def session_key(call: CallInfo) -> str:
    return f"{call.uuid}@{call.started_at.isoformat()}"


def start_record(call: CallInfo) -> dict:
    reg = call.registration
    return {"op": START, "uuid": call.uuid, "session": session_key(call), "peer": call.peer,
            "started_at": call.started_at.isoformat(), "sample_rate_hz": call.sample_rate_hz,
            "dtmf": [list(d) for d in call.dtmf], "redaction": call.redaction,
            "registration": {"channel": reg.channel, "uniqueid": reg.uniqueid,
                             "linkedid": reg.linkedid, "server": reg.server,
                             "options": dataclasses.asdict(reg.options)}}


_EVENT_FIELDS = tuple(f.name for f in dataclasses.fields(TranscriptEvent))


def final_record(call: CallInfo, event: TranscriptEvent, offset: Optional[int]) -> dict:
    fields = {name: getattr(event, name) for name in _EVENT_FIELDS}
    fields["words"] = [[w.text, w.start_s, w.end_s, w.probability] for w in event.words]
    return {"op": FINAL, "uuid": call.uuid, "session": session_key(call), "offset": offset,
            "event": fields}


def alert_record(call: CallInfo, alert) -> dict:
    """A phrase alert (outputs/alerts.py); its segment index is the stored one already."""
    return {"op": ALERT, "uuid": call.uuid, "session": session_key(call),
            "segment": alert.segment, "rule": alert.rule, "matched": alert.matched,
            "start_s": alert.start_s, "end_s": alert.end_s}


def end_record(call: CallInfo) -> dict:
    ended_at = call.ended_at.isoformat() if call.ended_at else None
    return {"op": END, "uuid": call.uuid, "session": session_key(call), "ended_at": ended_at,
            "end_reason": call.end_reason, "sample_rate_hz": call.sample_rate_hz,
            "dtmf": [list(d) for d in call.dtmf]}


def call_of(start: dict) -> CallInfo:
    """The CallInfo a start record was taken from (as storage needs it)."""
    reg = start["registration"]
    registration = Registration(start["uuid"], reg["channel"], reg["uniqueid"], reg["linkedid"],
                                CallOptions.from_stored(reg["options"]), reg["server"])
    return CallInfo(uuid=start["uuid"], peer=start["peer"],
                    started_at=datetime.fromisoformat(start["started_at"]),
                    sample_rate_hz=start["sample_rate_hz"], registration=registration,
                    dtmf=_dtmf(start["dtmf"]), redaction=start.get("redaction", "pci"))


def ended_call_of(end: dict) -> CallInfo:
    """Enough of a CallInfo for storage's record_call_end."""
    ended_at = datetime.fromisoformat(end["ended_at"]) if end["ended_at"] else None
    return CallInfo(uuid=end["uuid"], peer="", started_at=ended_at or datetime.min,
                    sample_rate_hz=end["sample_rate_hz"], registration=Registration(end["uuid"]),
                    dtmf=_dtmf(end["dtmf"]), ended_at=ended_at, end_reason=end["end_reason"])


def event_of(final: dict) -> TranscriptEvent:
    fields = dict(final["event"])
    fields["words"] = tuple(Word(str(t), float(s), float(e), float(p))
                            for t, s, e, p in fields["words"])
    return TranscriptEvent(**fields)


def orphan_ends(records: Iterable[dict], now: datetime, reason: str) -> list[dict]:
    """End records for the sessions started but not ended in `records` (the spool of a run that
    died mid-call): without them those calls would stay open for ever."""
    open_sessions: dict[str, dict] = {}
    for record in records:
        if record["op"] == START:
            open_sessions[record["session"]] = record
        elif record["op"] == END:
            open_sessions.pop(record["session"], None)
    return [{"op": END, "uuid": start["uuid"], "session": session, "ended_at": now.isoformat(),
             "end_reason": reason, "sample_rate_hz": start["sample_rate_hz"],
             "dtmf": start["dtmf"]} for session, start in open_sessions.items()]


def _dtmf(pairs) -> list[tuple[float, str]]:
    return [(float(t), str(d)) for t, d in pairs]
