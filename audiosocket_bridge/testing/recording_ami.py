"""The fake AMI of audiosocket_bridge.testing.fake_ami, recording what a load test measures: each
`UserEvent: Transcript` final and partial with its arrival time, and each call's `TranscriptEnd`."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from .fake_ami import FakeAmi


@dataclass(frozen=True)
class AmiPartial:
    start_s: float
    end_s: float
    arrived: float  # time.monotonic() when the action was read


@dataclass(frozen=True)
class AmiFinal:
    uuid: str
    segment: int
    start_s: float
    end_s: float
    text: str
    arrived: float  # time.monotonic() when the action was read


class RecordingAmi(FakeAmi):
    """The fake AMI, plus arrival-timestamped `UserEvent: Transcript` finals and `TranscriptEnd`s.

    With keep_actions=False (default) it keeps no action log or variables, so a long soak does
    not grow; finals and call ends are kept per UUID until forget() is called.
    """

    def __init__(self, *args, keep_actions: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.keep_actions = keep_actions
        self.finals: Dict[str, List[AmiFinal]] = {}
        self.ends: Dict[str, float] = {}  # uuid -> TranscriptEnd arrival
        self.duplicate_finals = 0  # the same (uuid, segment) again, e.g. re-sent after an outage
        self.partials = 0
        self.partials_by_call: Dict[str, List[AmiPartial]] = {}

    def _process(self, session, lines, too_long) -> bool:
        arrived = time.monotonic()
        if not too_long:
            headers = {}
            for line in lines:
                key, sep, value = line.partition(":")
                if sep:
                    headers.setdefault(key.strip(), value.strip())
            if headers.get("Action", "").lower() == "userevent":
                self._record(headers, arrived)
        keep = super()._process(session, lines, too_long)
        if not self.keep_actions:
            with self._lock:
                self.actions.clear()
                self.variables.clear()
        return keep

    def _record(self, headers: Dict[str, str], arrived: float) -> None:
        name, call = headers.get("UserEvent", ""), headers.get("Uuid", "").lower()
        with self._changed:
            if name == "Transcript" and headers.get("Final") == "1":
                finals = self.finals.setdefault(call, [])
                segment = int(headers.get("Segment", "-1"))
                if any(f.segment == segment for f in finals):
                    self.duplicate_finals += 1
                else:
                    finals.append(AmiFinal(call, segment, float(headers.get("Start", "nan")),
                                           float(headers.get("End", "nan")),
                                           headers.get("Text", ""), arrived))
            elif name == "Transcript":
                self.partials += 1
                self.partials_by_call.setdefault(call, []).append(AmiPartial(
                    float(headers.get("Start", "nan")), float(headers.get("End", "nan")), arrived))
            elif name == "TranscriptEnd":
                self.ends.setdefault(call, arrived)
            self._changed.notify_all()

    def register_call(self, call_uuid: str, channel: str, partials: bool = False) -> None:
        """What `UserEvent(AudioSocketStart,Uuid: ${ID},...)` in the dialplan emits."""
        self.emit_user_event("AudioSocketStart", {"Uuid": call_uuid, "Language": "en",
                                                  "Partials": "1" if partials else "0"},
                             snapshot={"Channel": channel, "Uniqueid": f"{time.time():.6f}",
                                       "Linkedid": f"{time.time():.6f}"})

    def finals_of(self, call_uuid: str) -> List[AmiFinal]:
        with self._lock:
            return sorted(self.finals.get(call_uuid.lower(), []), key=lambda f: f.segment)

    def partials_of(self, call_uuid: str) -> List[AmiPartial]:
        with self._lock:
            return list(self.partials_by_call.get(call_uuid.lower(), []))

    def ended(self, call_uuid: str) -> Optional[float]:
        with self._lock:
            return self.ends.get(call_uuid.lower())

    def forget(self, call_uuids: Sequence[str]) -> None:
        with self._lock:
            for call in call_uuids:
                self.finals.pop(call.lower(), None)
                self.partials_by_call.pop(call.lower(), None)
                self.ends.pop(call.lower(), None)
