"""Several engine processes, each a model on its own share of the cores, behind StreamingEngine's interface.

One engine runs one scheduler thread: its decoding steps are small matrix products plus Python,
which a second intra-op thread hardly speeds up (tiny.en on 2 AMD cores: 1.1 of 2 cores busy at
32 calls). Two engines of one thread each keep both cores busy. A stream lives on one worker for
its whole life: the one with the fewest open streams when it opens. Each worker measures its own
capacity and spaces its own streams' partials (capacity.py).

The pool supervises its workers from a thread of its own: a worker that died is started again
(at once the first time, then after a pause that doubles from `respawn_first_s` up to
`respawn_max_s` while it keeps dying within `healthy_after_s`), and one that has sent nothing
for `hang_after_s` (it sends stats twice a second even when idle) is killed and so replaced. A
dead worker's streams are opened again on a live worker (failover.py), or on the respawned one
if none is live; is_alive() is false while any worker is down, so /healthz tells.

This module imports no torch, like process.py.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from .options import EngineOptions, check_stream_options
from .failover import PoolStream
from .process import EngineGone, EngineProcess
from .types import EngineStats, EventCallback, StreamOptions

log = logging.getLogger(__name__)

MAX_AUTO_WORKERS = 8  # each worker holds a copy of the model


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def nvidia_gpu_present() -> bool:
    """An NVIDIA driver is loaded: where no device is given, the model will run on CUDA (if torch
    has it). Looked up without importing torch, which the bridge's own process does not need."""
    return os.path.exists("/dev/nvidiactl") or os.path.exists("/proc/driver/nvidia/version")


def plan_workers(requested: int, device: Optional[str], cores: int,
                 gpu_present: bool = False) -> Tuple[int, Optional[int]]:  # fmt: skip
    """(workers, torch threads per worker). `requested` 0 means: one single-threaded worker per
    core on the CPU (at most MAX_AUTO_WORKERS), one worker with every thread on an accelerator
    (`device`, or no device given and `gpu_present`), which batches better than several would."""
    if requested < 0:
        raise ValueError(f"engine workers must be 0 (automatic) or more, not {requested}")
    on_accelerator = gpu_present if device is None else not device.startswith("cpu")
    workers = requested or (1 if on_accelerator else max(1, min(cores, MAX_AUTO_WORKERS)))
    if on_accelerator:
        return workers, None
    return workers, max(1, cores // workers)


@dataclass(frozen=True)
class _Home:
    worker: EngineProcess
    stream: PoolStream


@dataclass(frozen=True)
class Supervision:
    check_s: float = 0.5
    hang_after_s: float = 30.0  # silent this long: killed and replaced
    respawn_first_s: float = 1.0
    respawn_max_s: float = 60.0
    healthy_after_s: float = 60.0  # a worker that lived this long died by accident: no pause


class EnginePool:
    """An Engine (interface.py) over several EngineProcess workers."""

    def __init__(self, model_name: str, workers: int, *, device: Optional[str] = None,
                 options: EngineOptions = EngineOptions(), threads: Optional[int] = None,
                 quantize: bool = False, supervision: Supervision = Supervision()):  # fmt: skip
        if workers < 1:
            raise ValueError("an engine pool needs at least one worker")
        self._new_worker = lambda: EngineProcess(model_name, device=device, options=options, threads=threads,
                                                 quantize=quantize)  # fmt: skip
        self.workers = [self._new_worker() for _ in range(workers)]
        self.supervision = supervision
        self.multilingual = False
        self.respawns = 0  # workers started again
        self._homes: Dict[str, _Home] = {}
        self._orphans: List[PoolStream] = []  # their worker died and no other was running
        self._lock = threading.RLock()  # a stream may be orphaned again while it is being placed
        self._stopping = threading.Event()
        self._respawning: set = set()  # worker slots being started again
        self._started_s: Dict[int, float] = {}
        self._backoff_s: Dict[int, float] = {}
        self._supervisor: Optional[threading.Thread] = None

    def start(self) -> None:
        """Start every worker at once (each loads the model); if one fails, stop the others."""
        errors: List[BaseException] = []

        def start(worker: EngineProcess) -> None:
            try:
                worker.start()
            except BaseException as error:  # noqa: BLE001 - re-raised below
                errors.append(error)

        threads = [threading.Thread(target=start, args=(worker,), daemon=True) for worker in self.workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            self.stop(5)
            raise errors[0]
        self.multilingual = self.workers[0].multilingual
        self._started_s = {index: time.monotonic() for index in range(len(self.workers))}
        self._supervisor = threading.Thread(target=self._supervise, name="engine-supervisor", daemon=True)
        self._supervisor.start()
        log.info("streaming engine: %d worker processes, %s torch threads each", len(self.workers),
                 self.workers[0].threads or "default")

    def is_alive(self) -> bool:
        supervised = self._supervisor is not None and self._supervisor.is_alive()
        return supervised and all(worker.is_alive() for worker in self.workers)

    def stats(self) -> EngineStats:
        return combined_stats([worker.stats() for worker in self.workers])

    def open_stream(self, stream_id: str, options: StreamOptions = StreamOptions(),
                    on_event: Optional[EventCallback] = None) -> PoolStream:  # fmt: skip
        check_stream_options(options, self.multilingual)
        with self._lock:
            if stream_id in self._homes:
                raise ValueError(f"stream {stream_id!r} is already open")
            stream = PoolStream(stream_id, options, on_event or (lambda event: None), self._orphaned,
                                self._forget)
            self._place(stream, self._least_loaded())
        return stream

    def stop(self, timeout_s: float = 10.0) -> None:
        """Flush every open stream on every worker (in parallel), then end the processes."""
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(5)
        threads = [threading.Thread(target=worker.stop, args=(timeout_s,), daemon=True) for worker in self.workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout_s + 10)

    def _least_loaded(self) -> EngineProcess:
        alive = [worker for worker in self.workers if worker.is_alive()]
        if not alive:
            raise EngineGone("no engine process is running")
        load = {id(worker): 0 for worker in alive}
        for home in self._homes.values():
            if id(home.worker) in load:
                load[id(home.worker)] += 1
        return min(alive, key=lambda worker: load[id(worker)])

    def _place(self, stream: PoolStream, worker: EngineProcess) -> None:
        """Under the lock: the stream opened (again) on `worker`."""
        self._homes[stream.id] = _Home(worker, stream)
        stream.attach(lambda callback: worker.open_stream(stream.id, stream.stream_options, callback))

    def _orphaned(self, stream: PoolStream) -> None:
        """Its worker died (a receiver thread): another worker takes it, or the next respawned."""
        with self._lock:
            if stream.close_future.done() or self._stopping.is_set():
                return
            try:
                self._place(stream, self._least_loaded())
            except EngineGone:
                log.warning("stream %s waits for an engine worker to be restarted", stream.id)
                self._orphans.append(stream)

    def _forget(self, stream: PoolStream) -> None:
        with self._lock:
            home = self._homes.get(stream.id)
            if home is not None and home.stream is stream:
                del self._homes[stream.id]
            if stream in self._orphans:
                self._orphans.remove(stream)

    # -- supervision (the engine-supervisor thread, and one thread per worker being restarted)
    def _supervise(self) -> None:
        while not self._stopping.wait(self.supervision.check_s):
            for index, worker in enumerate(list(self.workers)):
                if worker.is_alive():
                    if worker.silent_s() > self.supervision.hang_after_s:
                        log.error("engine worker %d sent nothing for %.0f s: killing it", index, worker.silent_s())
                        worker.kill()
                elif index not in self._respawning:
                    self._respawning.add(index)
                    threading.Thread(target=self._respawn, args=(index, worker), name="engine-respawn",
                                     daemon=True).start()

    def _respawn(self, index: int, dead: EngineProcess) -> None:
        try:
            dead.stop(1.0)
            pause_s = self._pause_before_respawn(index)
            while not self._stopping.wait(pause_s):
                worker = self._new_worker()
                try:
                    worker.start()
                except Exception as error:  # noqa: BLE001 - tried again after a longer pause
                    pause_s = min(max(2 * pause_s, self.supervision.respawn_first_s), self.supervision.respawn_max_s)
                    log.error("engine worker %d could not be started again (%s); next try in %g s", index, error,
                              pause_s)
                    continue
                self._adopt(index, worker)
                return
        finally:
            self._respawning.discard(index)

    def _pause_before_respawn(self, index: int) -> float:
        """None after a worker that lived long; growing while one keeps dying soon after its start."""
        lived_s = time.monotonic() - self._started_s.get(index, 0.0)
        if lived_s >= self.supervision.healthy_after_s:
            self._backoff_s[index] = 0.0
            return 0.0
        previous = self._backoff_s.get(index, 0.0)
        self._backoff_s[index] = min(max(2 * previous, self.supervision.respawn_first_s),
                                     self.supervision.respawn_max_s)
        return self._backoff_s[index]

    def _adopt(self, index: int, worker: EngineProcess) -> None:
        with self._lock:
            if self._stopping.is_set():
                worker.stop(1.0)
                return
            self.workers[index] = worker
            self._started_s[index] = time.monotonic()
            self.respawns += 1
            orphans, self._orphans = self._orphans, []
            for stream in orphans:
                if not stream.close_future.done():
                    self._place(stream, self._least_loaded())
        log.warning("engine worker %d started again (%d stream(s) moved to it)", index, len(orphans))


def combined_stats(parts: Sequence[EngineStats]) -> EngineStats:
    """One engine's view of several: counts add up, the worst lag and spacing count, the cost of a
    window is the mean of the workers that measured one."""
    measured = [p.window_cost_s for p in parts if p.window_cost_s > 0]
    lag_s = max((p.lag_s for p in parts), default=0.0)
    return EngineStats(
        active_streams=sum(p.active_streams for p in parts), queued_audio_s=sum(p.queued_audio_s for p in parts),
        lag_s=lag_s, behind=any(p.behind for p in parts), partials_skipped=sum(p.partials_skipped for p in parts),
        finals_emitted=sum(p.finals_emitted for p in parts), partials_emitted=sum(p.partials_emitted for p in parts),
        audio_dropped_s=sum(p.audio_dropped_s for p in parts),
        window_cost_s=sum(measured) / len(measured) if measured else 0.0,
        partial_interval_s=max((p.partial_interval_s for p in parts), default=0.0),
    )  # fmt: skip
