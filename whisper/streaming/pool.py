"""Several engine processes, each a model on its own share of the cores, behind StreamingEngine's interface.

One engine runs one scheduler thread: its decoding steps are small matrix products plus Python,
which a second intra-op thread hardly speeds up (tiny.en on 2 AMD cores: 1.1 of 2 cores busy at
32 calls). Two engines of one thread each keep both cores busy. A stream lives on one worker for
its whole life: the one with the fewest open streams when it opens. Each worker measures its own
capacity and spaces its own streams' partials (capacity.py).

This module imports no torch, like process.py.
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from .options import EngineOptions, check_stream_options
from .process import EngineGone, EngineProcess, RemoteStream
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
    stream: RemoteStream


class EnginePool:
    def __init__(self, model_name: str, workers: int, *, device: Optional[str] = None,
                 options: EngineOptions = EngineOptions(), threads: Optional[int] = None,
                 quantize: bool = False):  # fmt: skip
        if workers < 1:
            raise ValueError("an engine pool needs at least one worker")
        self.workers = [EngineProcess(model_name, device=device, options=options, threads=threads, quantize=quantize)
                        for _ in range(workers)]
        self.multilingual = False
        self._homes: Dict[str, _Home] = {}
        self._lock = threading.Lock()

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
        log.info("streaming engine: %d worker processes, %s torch threads each", len(self.workers),
                 self.workers[0].threads or "default")

    def is_alive(self) -> bool:
        return all(worker.is_alive() for worker in self.workers)

    def stats(self) -> EngineStats:
        return combined_stats([worker.stats() for worker in self.workers])

    def open_stream(self, stream_id: str, options: StreamOptions = StreamOptions(),
                    on_event: Optional[EventCallback] = None) -> RemoteStream:  # fmt: skip
        check_stream_options(options, self.multilingual)
        with self._lock:
            if stream_id in self._homes:
                raise ValueError(f"stream {stream_id!r} is already open")
            worker = self._least_loaded()
            stream = worker.open_stream(stream_id, options, on_event)
            self._homes[stream_id] = _Home(worker, stream)
        stream.close_future.add_done_callback(lambda _: self._forget(stream_id, stream))
        return stream

    def stop(self, timeout_s: float = 10.0) -> None:
        """Flush every open stream on every worker (in parallel), then end the processes."""
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

    def _forget(self, stream_id: str, stream: RemoteStream) -> None:
        with self._lock:
            home = self._homes.get(stream_id)
            if home is not None and home.stream is stream:
                del self._homes[stream_id]


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
