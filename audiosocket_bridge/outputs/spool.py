"""The storage writes not yet in the database, in order: in memory up to a bound, then in an
append-only spool file (JSON lines), so a database outage loses nothing.

One FIFO of records (plain JSON-able dicts) in three parts, oldest first: `head` in memory,
the file, `tail` in memory. New records go to the head while the file and tail are empty and
the head has room, else to the file; the file is read back into the head, a batch at a time,
only when the head is empty, and a file read to its end is emptied. The tail holds what came
while the file could not be written (the disk is full): it goes to the file at the next append
that works, or to the head once the file is read. In memory at most `memory_max` records; past
that a record is dropped, counted in `dropped` and logged (the only loss).
A file left by an earlier run is replayed first (SpoolFile.open). Thread-safe: the event loop
puts, the storage writer thread takes.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Optional

from .storage import sqlite_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpoolOptions:
    memory_records: int = 1000  # kept in memory before they go to the file
    memory_max: int = 20000  # in memory at most, when the file cannot be written either
    unhealthy_records: int = 1000  # /healthz fails while more than this many wait


def default_spool_dir(storage_url: str, environ: Mapping[str, str] = os.environ) -> str:
    """systemd's StateDirectory= (the unit's /var/lib/asterisk-whisper), else the SQLite file's
    folder, else the working directory."""
    if environ.get("STATE_DIRECTORY"):
        return environ["STATE_DIRECTORY"].split(":")[0]
    if storage_url.startswith("sqlite:"):
        path = sqlite_path(storage_url)
        if path != ":memory:":
            return str(Path(path).parent)
    return "."


def spool_path(directory: str, bridge_id: str) -> Path:
    """One file per bridge: bridges on one host may share a directory."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", bridge_id) or "bridge"
    return Path(directory) / f"storage-spool-{safe}.jsonl"


class Spool:
    def __init__(self, path: Path, options: SpoolOptions = SpoolOptions()) -> None:
        self.path, self.options = path, options
        self.dropped = 0  # records lost: memory and file both full (logged)
        self._lock = threading.Lock()
        self._head: deque[dict] = deque()
        self._tail: list[dict] = []  # came while the file could not be written
        self._file_records = 0  # records in the file not yet read back
        self._read_offset = 0  # bytes of the file already read back into memory
        self._file_bytes = 0
        self._file_broken = False  # the last append failed: memory holds what came since
        self._recover()

    # -- the loop's side
    def put(self, record: dict) -> None:
        with self._lock:
            if (not self._file_records and not self._tail
                    and len(self._head) < self.options.memory_records):
                self._head.append(record)
            elif self._append(self._tail + [record]):
                self._tail = []
            else:
                self._keep_in_tail(record)

    # -- the writer's side
    def peek(self) -> Optional[dict]:
        """The oldest record, or None when there is none."""
        with self._lock:
            if not self._head and self._file_records:
                self._read_back()
            if not self._head and self._tail:
                self._head.extend(self._tail)
                self._tail = []
            return self._head[0] if self._head else None

    def pop(self) -> None:
        """The record peek() gave is in the database."""
        with self._lock:
            self._head.popleft()

    @property
    def pending(self) -> int:
        """Records waiting: in memory and in the file."""
        return len(self._head) + self._file_records + len(self._tail)

    @property
    def file_bytes(self) -> int:
        return self._file_bytes

    def persist(self) -> None:
        """At shutdown, with records still waiting: all of them into the file (atomically), for
        the next start to write them."""
        with self._lock:
            waiting = self.pending
            if not waiting:
                self._truncate()
                self.path.unlink(missing_ok=True)
                return
            temporary = self.path.with_suffix(".tmp")
            with _private(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC) as out:
                out.write("".join(_line(r) for r in self._head).encode("utf-8"))
                if self._file_records:  # the unread part of the file, copied in chunks
                    with open(self.path, "rb") as rest:
                        rest.seek(self._read_offset)
                        shutil.copyfileobj(rest, out)
                out.write("".join(_line(r) for r in self._tail).encode("utf-8"))
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
            log.warning("storage: %d write(s) kept in %s for the next start", waiting, self.path)

    def records_in_file(self) -> Iterator[dict]:
        """The records in the file, read one by one (at start, before anything else uses the
        spool: those an earlier run left)."""
        if not self._file_records:
            return
        with open(self.path, "rb") as handle:
            handle.seek(self._read_offset)
            yield from (json.loads(line) for line in handle if line.strip())

    def sync(self) -> None:
        """Flushes the file to disk (the writer calls it while it waits for the database); not
        under the lock, so that put() on the event loop never waits for a disk."""
        with self._lock:
            if not self._file_records:
                return
        try:
            with open(self.path, "rb") as handle:
                os.fsync(handle.fileno())
        except OSError:  # emptied meanwhile, or the disk failing: the next append says so
            pass

    # -- under the lock
    def _append(self, records: list[dict]) -> bool:
        data = "".join(_line(r) for r in records).encode("utf-8")
        try:
            with _private(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND) as out:
                out.write(data)
                out.flush()
        except OSError as error:
            self._undo_append(error)
            return False
        if self._file_broken:
            log.warning("storage spool: %s writable again", self.path)
        self._file_broken = False
        self._file_records += len(records)
        self._file_bytes += len(data)
        return True

    def _undo_append(self, error: OSError) -> None:
        """A partial line would corrupt the file: cut it back to what it held."""
        try:
            with open(self.path, "ab") as out:
                out.truncate(self._file_bytes)
        except OSError:
            pass
        if not self._file_broken:
            log.error("storage spool: cannot write %s (%s); keeping writes in memory",
                      self.path, error.strerror or error)
        self._file_broken = True

    def _keep_in_tail(self, record: dict) -> None:
        if len(self._head) + len(self._tail) < self.options.memory_max:
            self._tail.append(record)
            return
        self.dropped += 1
        log.error("storage spool full (%d in memory, file not writable): a %s write of call %s "
                  "is lost", len(self._head) + len(self._tail), record.get("op"),
                  record.get("uuid"))

    def _read_back(self) -> None:
        """Memory is empty: the next batch of the file into it."""
        batch = []
        with open(self.path, "rb") as handle:
            handle.seek(self._read_offset)
            while len(batch) < self.options.memory_records:
                line = handle.readline()
                if not line:
                    break
                self._read_offset += len(line)
                if line.strip():
                    batch.append(json.loads(line))
        self._head.extend(batch)
        self._file_records -= len(batch)
        if self._file_records <= 0 or self._read_offset >= self._file_bytes:
            self._truncate()

    def _truncate(self) -> None:
        self._file_records = self._read_offset = self._file_bytes = 0
        try:
            with open(self.path, "r+b") as handle:
                handle.truncate(0)
        except OSError:  # FileNotFoundError: never written
            pass

    def _recover(self) -> None:
        """A file left by an earlier run: its records come first. A torn last line (a crash
        mid-append) is dropped."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        good = [line for line in lines[:-1] if line.strip()]
        if lines[-1].strip():
            log.warning("storage spool: ignoring a torn last line in %s", self.path)
        self._file_records = len(good)
        self._file_bytes = sum(len(line) + 1 for line in lines[:-1])
        with open(self.path, "r+b") as handle:
            handle.truncate(self._file_bytes)
        if good:
            log.warning("storage spool: %d write(s) left in %s by an earlier run; writing them "
                        "first", len(good), self.path)


def _private(path: Path, flags: int):
    """The file opened for binary writing, created 0600: it holds (redacted) transcripts."""
    return os.fdopen(os.open(path, flags, 0o600), "wb")


def _line(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
