"""Long-form transcription: slide a 30 s window over the audio, seeking by the decoded timestamps."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .audio import (FRAMES_PER_SECOND, HOP_LENGTH, N_FRAMES, N_SAMPLES, AudioInput, audio_samples,
                    log_mel_spectrogram, log_mel_window, pad_or_trim)  # fmt: skip
from .decoding import DecodingOptions, DecodingResult, DecodingTask
from .loops import speech_s
from .hallucination import SilenceSkip
from .progress import progress_bar
from .segments import Window, WindowSegments, clear_empty, last_word_end, split_into_segments
from .policy import DEFAULT_TEMPERATURES, FallbackPolicy, retry_hotter
from .timing import APPEND_PUNCTUATIONS, PREPEND_PUNCTUATIONS, add_word_timestamps
from .tokenizer import LANGUAGES, Tokenizer, get_tokenizer
from .writers import format_timestamp

if TYPE_CHECKING:
    from .model import Whisper

PROMPT_RESET_TEMPERATURE = 0.5  # text sampled hotter than this is a poor prompt for the next window


def _at_temperature(options: DecodingOptions, temperature: float) -> DecodingOptions:
    if temperature > 0:  # sampling: beams do not apply
        return replace(options, temperature=temperature, beam_size=None, patience=None)
    return replace(options, temperature=temperature, best_of=None)


def decode_with_fallback(model: "Whisper", mel: Tensor, options: DecodingOptions, policy: FallbackPolicy,
                         speech: Optional[float] = None) -> DecodingResult:  # fmt: skip
    """Decode at each temperature in turn until the result is neither repetitive nor unlikely; if
    none is, the likeliest of them that is not repetitive (policy.likeliest). ``speech``: seconds
    of speech in the window (``loops.speech_s``; measured from ``mel`` if None and it is a mel)."""
    tried: List[DecodingResult] = []

    def decode_at(temperature: float) -> DecodingResult:
        task = DecodingTask(model, _at_temperature(options, temperature))
        tried.append(task.run(mel[None].to(model.device), speech=None if speech is None else [speech])[0])
        return tried[-1]

    result = retry_hotter(decode_at, policy.temperatures, policy.needs_fallback)
    return result if not policy.needs_fallback(result) else policy.likeliest(tried)


def parse_clip_timestamps(clip_timestamps: Union[str, Sequence[float]], content_frames: int) -> List[Tuple[int, int]]:
    """"start,end,start,end,..." seconds (a missing last end means the end of the audio) as frame ranges."""
    if isinstance(clip_timestamps, str):
        clip_timestamps = [float(ts) for ts in clip_timestamps.split(",") if ts.strip()]
    points = [min(content_frames, round(ts * FRAMES_PER_SECOND)) for ts in clip_timestamps] or [0]
    if len(points) % 2:
        points.append(content_frames)
    return list(zip(points[::2], points[1::2]))


@dataclass
class SeekState:
    """Where the next window starts, moving through the clips to transcribe in order."""

    clips: List[Tuple[int, int]]
    content_frames: int
    seek: int = 0
    clip_index: int = 0

    def __post_init__(self) -> None:
        self.seek = self.clips[0][0] if self.clips else 0

    def next_window(self) -> Optional[Window]:
        while self.clip_index < len(self.clips):
            start, end = self.clips[self.clip_index]
            self.seek = max(self.seek, start)
            if self.seek < end:
                return Window(self.seek, min(N_FRAMES, self.content_frames - self.seek, end - self.seek))
            self.clip_index += 1
            if self.clip_index < len(self.clips):
                self.seek = self.clips[self.clip_index][0]
        return None


@dataclass
class Transcript:
    """Everything decoded so far: segments, their tokens, and which of them prompt the next window."""

    tokenizer: Tokenizer
    initial_prompt_tokens: List[int] = field(default_factory=list)
    all_tokens: List[int] = field(default_factory=list)
    segments: List[dict] = field(default_factory=list)
    prompt_reset_since: int = 0
    last_speech_s: float = 0.0

    def __post_init__(self) -> None:
        self.all_tokens = list(self.initial_prompt_tokens)

    def prompt(self) -> List[int]:
        return self.all_tokens[self.prompt_reset_since :]

    def add(self, segments: List[dict], temperature: float, condition_on_previous_text: bool) -> None:
        clear_empty(segments)
        first_id = len(self.segments)
        self.segments.extend({"id": first_id + i, **segment} for i, segment in enumerate(segments))
        self.all_tokens.extend(token for segment in segments for token in segment["tokens"])
        if not condition_on_previous_text or temperature > PROMPT_RESET_TEMPERATURE:
            self.prompt_reset_since = len(self.all_tokens)

    def result(self, language: str) -> dict:
        text = self.tokenizer.decode(self.all_tokens[len(self.initial_prompt_tokens) :])
        return dict(text=text, segments=self.segments, language=language)


@dataclass(frozen=True)
class WordOptions:
    enabled: bool = False
    prepend_punctuations: str = PREPEND_PUNCTUATIONS
    append_punctuations: str = APPEND_PUNCTUATIONS
    silence_skip: Optional[SilenceSkip] = None  # set with hallucination_silence_threshold


def _language(model: "Whisper", mel: Tensor, language: Optional[str], verbose: Optional[bool],
              candidates: Sequence[str] = ()) -> str:
    if language is not None:
        return language
    if not model.is_multilingual:
        return "en"
    _, probs = model.detect_language(pad_or_trim(mel, N_FRAMES).to(model.device), candidates=candidates)
    detected = max(probs, key=probs.get)
    if verbose:
        print(f"Detected language: {LANGUAGES[detected].title()}")
    return detected


def _print_segments(segments: List[dict]) -> None:
    for segment in segments:
        print(f"[{format_timestamp(segment['start'])} --> {format_timestamp(segment['end'])}] {segment['text']}")


def _add_words(model: "Whisper", tokenizer: Tokenizer, features: Tensor, window: Window,
               split: WindowSegments, words: WordOptions, transcript: Transcript) -> Tuple[List[dict], int]:  # fmt: skip
    """Word timings for one window's segments (from the window's encoder states, as decoded); may
    drop hallucinated segments and move the next seek."""
    add_word_timestamps(
        segments=split.segments, model=model, tokenizer=tokenizer, mel=None, audio_features=features,
        num_frames=window.n_frames,
        prepend_punctuations=words.prepend_punctuations, append_punctuations=words.append_punctuations,
        last_speech_timestamp=transcript.last_speech_s,
    )  # fmt: skip
    segments, next_seek = split.segments, split.next_seek
    if words.silence_skip is not None:
        segments, next_seek = words.silence_skip.apply(split, window, transcript.last_speech_s)
    end_s = last_word_end(segments)
    if end_s is not None:
        transcript.last_speech_s = end_s
    return segments, next_seek


def _transcribe_window(model: "Whisper", mel: Tensor, window: Window, options: DecodingOptions,
                       policy: FallbackPolicy, words: WordOptions, transcript: Transcript,
                       condition_on_previous_text: bool, verbose: Optional[bool]) -> int:  # fmt: skip
    """Decode one window into the transcript; returns where the next window starts."""
    mel_window = pad_or_trim(mel[:, window.seek : window.end_seek], N_FRAMES).to(model.device)
    features = model.embed_audio(mel_window.unsqueeze(0), content_frames=window.n_frames)[0]
    speech = speech_s(mel_window, window.n_frames)
    result = decode_with_fallback(model, features, replace(options, prompt=transcript.prompt()), policy, speech)
    if policy.is_silence(result):
        return window.end_seek
    split = split_into_segments(transcript.tokenizer, result, window)
    segments, next_seek = split.segments, split.next_seek
    if words.enabled:
        segments, next_seek = _add_words(model, transcript.tokenizer, features, window, split, words, transcript)
    if verbose:
        _print_segments(segments)
    transcript.add(segments, result.temperature, condition_on_previous_text)
    return next_seek


def _audio_mel(model: "Whisper", audio: AudioInput) -> Tensor:
    """Log-mel of the whole input plus 30 s of padding, so the last window is complete."""
    return log_mel_spectrogram(audio, model.dims.n_mels, padding=N_SAMPLES)


def transcribe(
    model: "Whisper",
    audio: AudioInput,
    *,
    verbose: Optional[bool] = None,
    temperature: Union[float, Sequence[float]] = DEFAULT_TEMPERATURES,
    compression_ratio_threshold: Optional[float] = 2.4,
    logprob_threshold: Optional[float] = -1.0,
    no_speech_threshold: Optional[float] = 0.6,
    condition_on_previous_text: bool = True,
    initial_prompt: Optional[str] = None,
    word_timestamps: bool = False,
    prepend_punctuations: str = PREPEND_PUNCTUATIONS,
    append_punctuations: str = APPEND_PUNCTUATIONS,
    clip_timestamps: Union[str, Sequence[float]] = "0",
    hallucination_silence_threshold: Optional[float] = None,
    progress: bool = False,
    **decode_options,
) -> dict:
    """Transcribe a file path or 16 kHz samples: {"text", "segments", "language"} as openai-whisper gives.

    ``verbose``: True prints segments as they are decoded; False (or ``progress=True``) shows a
    progress bar. ``decode_options`` are DecodingOptions fields (task, language, beam_size, ...).
    """
    mel = _audio_mel(model, audio)
    content_frames = mel.shape[-1] - N_FRAMES
    language = _language(model, mel, decode_options.pop("language", None), verbose,
                         decode_options.pop("language_candidates", ()))
    options = DecodingOptions(**decode_options, language=language)
    if word_timestamps and options.task == "translate":
        warnings.warn("word-level timestamps on translations may not be reliable")
    tokenizer = get_tokenizer(model.is_multilingual, num_languages=model.num_languages, language=language,
                              task=options.task)  # fmt: skip
    temperatures = (temperature,) if isinstance(temperature, (int, float)) else tuple(temperature)
    policy = FallbackPolicy(temperatures, compression_ratio_threshold, logprob_threshold, no_speech_threshold)
    silence_skip = None
    if hallucination_silence_threshold is not None:
        silence_skip = SilenceSkip(hallucination_silence_threshold, content_frames)
    words = WordOptions(word_timestamps, prepend_punctuations, append_punctuations, silence_skip)
    prompt_tokens = tokenizer.encode(" " + initial_prompt.strip()) if initial_prompt else []
    transcript = Transcript(tokenizer, prompt_tokens)
    seeker = SeekState(parse_clip_timestamps(clip_timestamps, content_frames), content_frames)
    with torch.inference_mode(), progress_bar(content_frames, progress or verbose is False) as bar:
        while (window := seeker.next_window()) is not None:
            seeker.seek = _transcribe_window(model, mel, window, options, policy, words, transcript,
                                             condition_on_previous_text, verbose)  # fmt: skip
            bar.update(min(content_frames, seeker.seek) - window.seek)
    return transcript.result(language)


def _batch_result(tokenizer: Tokenizer, result: DecodingResult, n_frames: int) -> dict:
    segments = split_into_segments(tokenizer, result, Window(0, n_frames)).segments
    clear_empty(segments)
    segments = [{"id": i, **segment} for i, segment in enumerate(segments)]
    return dict(text=tokenizer.decode([t for s in segments for t in s["tokens"]]), segments=segments,
                language=result.language)  # fmt: skip


def transcribe_batch(
    model: "Whisper",
    audios: Sequence[AudioInput],
    *,
    batch_size: int = 16,
    window_frames: int = N_FRAMES,
    **decode_options,
) -> List[dict]:
    """Transcribe many short inputs, ``batch_size`` at a time, in one decode per batch.

    Each input of 30 s or less is one window decoded with ``DecodingOptions(**decode_options)``
    (greedy by default), without seeking or temperature fallback; longer inputs go through
    ``transcribe`` at the same temperature. ``window_frames`` below 3000 groups inputs of similar
    length and pads each batch only to the longer of its longest input and ``window_frames``: a
    cheaper encoder, but Whisper was trained on 30 s windows, so check accuracy before using it.
    """
    options = DecodingOptions(**decode_options)
    samples = [audio_samples(audio) for audio in audios]
    content_frames = [len(audio) // HOP_LENGTH for audio in samples]
    short = [i for i, frames in enumerate(content_frames) if frames <= N_FRAMES]
    if window_frames < N_FRAMES:
        short.sort(key=lambda i: content_frames[i])
    results: List[Optional[dict]] = [None] * len(samples)
    with torch.inference_mode():
        for first in range(0, len(short), batch_size):
            indices = short[first : first + batch_size]
            width = min(N_FRAMES, max(window_frames, *(content_frames[i] for i in indices)))
            # Each window as transcribe() sees it: the log-mel of its audio then silence, not zeros in the mel.
            mels = [log_mel_window(samples[i], model.dims.n_mels)[:, :width] for i in indices]
            batch = torch.stack(mels).to(model.device)
            features = model.embed_audio(batch, content_frames=[content_frames[i] for i in indices])
            speech = [speech_s(mel, content_frames[i]) for mel, i in zip(mels, indices)]
            decoded = DecodingTask(model, options).run(features, speech=speech)
            tokenizer = get_tokenizer(model.is_multilingual, num_languages=model.num_languages,
                                      language=decoded[0].language, task=options.task)  # fmt: skip
            for i, result in zip(indices, decoded):
                results[i] = _batch_result(tokenizer, result, content_frames[i])
    for i in set(range(len(samples))) - set(short):
        results[i] = transcribe(model, samples[i], **{**decode_options, "temperature": options.temperature})
    return results  # type: ignore[return-value]
