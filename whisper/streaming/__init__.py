"""Streaming transcription: many live streams served by one model on one scheduler thread.

    types            the values users see: StreamOptions, TranscriptEvent, Word, EngineStats (no torch)
    options          EngineOptions
    vad              speech or not, per 20 ms frame
    endpointing      utterance boundaries from per-frame decisions
    policy           fallback and hallucination guards (shared with transcribe())
    job              a window for the decoder
    inbox            audio queued from any thread for the scheduler thread
    stream           one stream's audio, utterances and jobs
    decoder          the BatchDecoder interface the scheduler decodes through
    whisper_decoder  BatchDecoder on a Whisper model
    budget           the share of time partials may take
    capacity         the measured cost of a window, and the partial spacing it affords
    delivery         decoded windows into events
    scheduler        what runs when, on an injected clock
    interface        Engine, EngineStream: the interface every engine below (and the tests' fake) has
    engine           StreamingEngine: the scheduler on its own thread
    process          EngineProcess: the engine in a child process, same interface
    pool             EnginePool: several engine processes (one per core), same interface,
                     supervised: dead or hung workers replaced
    failover         PoolStream: a pool's stream, opened again elsewhere when its worker dies
    sim              feeding recordings, deterministically or in real time

Names load their modules on first use, so ``whisper.streaming.types`` imports without torch.
"""
from __future__ import annotations

from .._lazy import lazy_names

_HOMES = {
    "StreamingEngine": "engine", "Engine": "interface", "EngineStream": "interface", "EngineOptions": "options", "Stream": "stream", "Scheduler": "scheduler",
    "BatchDecoder": "decoder", "WhisperBatchDecoder": "whisper_decoder",
    "EngineStats": "types", "StreamOptions": "types", "TranscriptEvent": "types", "Word": "types",
}  # fmt: skip

__all__ = sorted(_HOMES)
__getattr__, __dir__ = lazy_names(__name__, _HOMES)
