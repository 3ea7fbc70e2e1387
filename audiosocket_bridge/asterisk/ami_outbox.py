"""What the AMI sink still has to send, kept across AMI outages.

Policy: the bound (`max_items`) is enforced by evicting the oldest queued
partial captions; a newer partial of the same call and segment replaces an
older queued one (it is a superset of it). If only finals remain, the queue
grows past the bound (counted in finals_over_bound: a long AMI outage with many
calls; finals are small and rare) up to `max_finals`; past that the oldest
final is dropped, counted in dropped_finals and logged (its transcript is in
storage; its channel has most likely hung up long ago). At shutdown the partials
still queued are dropped (drop_partials) so the finals go first.
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable, Optional

log = logging.getLogger(__name__)


@dataclass
class OutboxItem:
    """Actions sent in order as a unit; `next_index` lets a retry resume mid-way."""

    uuid: str
    actions: list[dict]
    final: bool
    segment: Optional[int] = None
    next_index: int = 0

    @property
    def pending_actions(self) -> list[dict]:
        return self.actions[self.next_index:]


@dataclass
class OutboxStats:
    queued: int = 0
    dropped_partials: int = 0
    superseded_partials: int = 0
    finals_over_bound: int = 0
    dropped_finals: int = 0
    max_depth: int = 0


class Outbox:
    """Thread-safe FIFO of OutboxItems with the drop policy above."""

    def __init__(self, max_items: int = 2000, max_finals: Optional[int] = None,
                 on_dropped: Callable[[OutboxItem], None] = lambda item: None) -> None:
        """`on_dropped(item)`: a final was dropped (under the outbox's lock: keep it short)."""
        if max_items < 1:
            raise ValueError("max_items must be >= 1")
        self.max_items = max_items
        self.max_finals = max(max_items, max_finals or 10 * max_items)
        self._on_dropped = on_dropped
        self.stats = OutboxStats()
        self._items: deque[OutboxItem] = deque()
        self._cond = threading.Condition()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def put(self, item: OutboxItem) -> None:
        with self._cond:
            if not item.final:
                self._drop_superseded(item)
            self._items.append(item)
            self.stats.queued += 1
            self._enforce_bound()
            self.stats.max_depth = max(self.stats.max_depth, len(self._items))
            self._cond.notify()

    def get(self, timeout_s: float) -> Optional[OutboxItem]:
        """Oldest item, or None after `timeout_s` with nothing queued."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout_s)
            return self._items.popleft() if self._items else None

    def put_back(self, item: OutboxItem) -> None:
        """Return an item whose sending failed to the front of the queue."""
        with self._cond:
            self._items.appendleft(item)
            self._cond.notify()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def drop_partials(self) -> None:
        """Shutdown: what is not final is not worth sending any more."""
        with self._cond:
            before = len(self._items)
            self._items = deque(i for i in self._items if i.final or i.next_index)
            self.stats.dropped_partials += before - len(self._items)

    def finals_pending(self) -> int:
        with self._cond:
            return sum(1 for item in self._items if item.final)

    def _drop_superseded(self, item: OutboxItem) -> None:
        before = len(self._items)
        self._items = deque(i for i in self._items
                            if i.final or i.next_index or (i.uuid, i.segment) != (item.uuid, item.segment))
        self.stats.superseded_partials += before - len(self._items)

    def _enforce_bound(self) -> None:
        while len(self._items) > self.max_items:
            victim = next((i for i in self._items if not i.final and not i.next_index), None)
            if victim is None:
                self.stats.finals_over_bound += 1
                self._enforce_finals_bound()
                return
            self._items.remove(victim)
            self.stats.dropped_partials += 1

    def _enforce_finals_bound(self) -> None:
        while len(self._items) > self.max_finals:
            victim = next((i for i in self._items if not i.next_index), None)
            if victim is None:
                return
            self._items.remove(victim)
            self.stats.dropped_finals += 1
            self._on_dropped(victim)
            if self.stats.dropped_finals % 1000 == 1:
                log.warning("AMI outbox full (%d finals waiting): dropped the oldest final, of "
                            "call %s (%d dropped so far; transcripts are in storage)",
                            len(self._items), victim.uuid, self.stats.dropped_finals)
