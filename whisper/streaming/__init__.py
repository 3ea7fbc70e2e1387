"""Streaming transcription: many live streams served by one model on one scheduler thread.

    types            the values users see: StreamOptions, TranscriptEvent, Word, EngineStats (no torch)
    pcm              16-bit PCM: the 20 ms frame, durations, joining chunks, the bounded AudioQueue
    options          EngineOptions
    vad              speech or not, per 20 ms frame
    endpointing      utterance boundaries from per-frame decisions
    job              a window for the decoder, as a value
    inbox            audio queued from any thread for the scheduler thread
    ingest           one stream's audio in: inbox, resampling, VAD, endpointer -> utterances
    stream           one stream's utterances: finals, speculative decodes, partials, language -> jobs
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

The audio's way, and its one backpressure rule: every queue on it is bounded in seconds of audio
and never blocks whoever fills it; past its bound audio is dropped and counted (EngineStats'
audio_dropped_s, the bridge's audiosocket_audio_dropped_seconds).

    socket -> Call's AudioQueue (10 s; the bridge's asyncio thread)          drops the oldest
           -> [EngineProcess._outgoing (10 s per stream) -> the pipe]       refuses the newest
           -> Stream -> Inbox (EngineOptions.max_pending_audio_s, 120 s)     drops the oldest
           -> Ingest (16 kHz frames, VAD, endpointer) -> Job -> the model

The queues that feed a transcript drop the oldest, so that it stays close to live. The pipe's
outbox (process.py, only with the engine in a child process) fills only when the child stops
reading: a hung worker, which the pool kills, losing what was queued for it either way, so it
refuses what comes instead of sorting its mixed messages. Chunks are joined by one function
(pcm.joined_runs): a stream's pushes before the pipe, an inbox's runs of one sample rate.

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
