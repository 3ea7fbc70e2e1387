"""Utterance boundaries from per-frame speech decisions: a pure policy over a stream's 20 ms frames."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from .vad import FRAME_MS


@dataclass(frozen=True)
class EndpointOptions:
    trailing_silence_s: float = 0.5  # silence that ends an utterance
    # ... or this much, for an utterance held open (``Endpointer.hold_open``): one that sounds like
    # the start of more, a number being read or a fragment the model cannot make out alone.
    held_trailing_silence_s: float = 1.2
    min_speech_s: float = 0.2  # shorter bursts (clicks, coughs) are not utterances
    start_speech_s: float = 0.1  # consecutive speech that opens an utterance
    max_utterance_s: float = 12.0  # longer speech is cut, in the longest recent pause
    # ... or this long, for an utterance held open because it is a number: a caller reads a long one
    # slowly, and a number cut in two loses digits (a rest of "8 7 7" decoded alone was dropped, or
    # with the first part as its prompt came out "8, 8, 8, 8, 8"). Prose is not let run this long:
    # long windows of real menus pass the compression-ratio guard and are dropped as loops.
    number_max_utterance_s: float = 28.0  # within the 30 s window with pre- and post-roll
    # How far back from the limit to look for that pause: far enough to reach the pause between two
    # sentences. Within the last 2 s, the quietest frame fell inside sentences ("appuyez sur | 3.",
    # long French prompts), and each half was decoded without the other's words.
    cut_search_s: float = 6.0
    pre_roll_s: float = 0.3  # audio kept before the first speech frame
    post_roll_s: float = 0.2  # audio kept after the last speech frame


@dataclass(frozen=True)
class Boundary:
    """An utterance that is over: frames [start_frame, end_frame) of the stream."""

    start_frame: int
    end_frame: int
    cut: bool  # True when ended by the length limit rather than by silence


def _frames(seconds: float) -> int:
    return max(1, round(seconds * 1000 / FRAME_MS))


class Endpointer:
    """Feeds on (is_speech, level) per frame; reports finished utterances and the open one's start."""

    def __init__(self, options: EndpointOptions = EndpointOptions()):
        self.options = options
        self.frame = 0  # index of the next frame
        self.start_frame: Optional[int] = None  # open utterance (including pre-roll)
        self.last_speech_frame = -1
        self.speech_frames = 0  # speech frames inside the open utterance
        self._run = 0  # consecutive speech frames while idle
        self._levels: List[float] = []  # levels of the open utterance's frames, to find a cut point
        self._silent: List[bool] = []  # ... and which of them the VAD heard no speech in
        self._held = False  # the open utterance ends after held_trailing_silence_s
        self._number = False  # ... and is cut only after number_max_utterance_s

    @property
    def in_utterance(self) -> bool:
        return self.start_frame is not None

    def push(self, is_speech: np.ndarray, level_dbfs: np.ndarray) -> List[Boundary]:
        boundaries: List[Boundary] = []
        for speech, level in zip(is_speech.tolist(), level_dbfs.tolist()):
            boundary = self._step(speech, level)
            if boundary is not None:
                boundaries.append(boundary)
            self.frame += 1
        return boundaries

    def _step(self, speech: bool, level: float) -> Optional[Boundary]:
        options = self.options
        if self.start_frame is None:
            self._run = self._run + 1 if speech else 0
            if self._run >= _frames(options.start_speech_s):
                first_speech = self.frame - self._run + 1
                self.start_frame = max(0, first_speech - _frames(options.pre_roll_s))
                self._levels = [-100.0] * (self.frame - self.start_frame)
                self._silent = [False] * len(self._levels)  # the pre-roll is never a cut point
                self.speech_frames = self._run
                self.last_speech_frame = self.frame
            return None
        self._levels.append(level)
        self._silent.append(not speech)
        if speech:
            self.speech_frames += 1
            self.last_speech_frame = self.frame
        if self.frame - self.last_speech_frame >= self._trailing_frames():
            return self._close(self.last_speech_frame + 1 + _frames(options.post_roll_s), cut=False)
        if self.frame + 1 - self.start_frame >= self._max_frames():
            return self._cut()
        return None

    def hold_open(self, number: bool = False) -> None:
        """The open utterance (if any) ends only after ``held_trailing_silence_s`` of silence; if it
        is a ``number``, it is cut only after ``number_max_utterance_s``."""
        self._held = self.start_frame is not None
        self._number = self._held and number

    def release(self) -> None:
        """The open utterance is no longer held: it ends after ``trailing_silence_s`` and is cut at
        ``max_utterance_s`` again (its decode went on into prose, which needs no waiting for)."""
        self._held = self._number = False

    @property
    def held(self) -> bool:
        return self._held

    def _max_frames(self) -> int:
        options = self.options
        longest_s = max(options.max_utterance_s, options.number_max_utterance_s)
        return _frames(longest_s if self._number else options.max_utterance_s)

    def _trailing_frames(self) -> int:
        longest_s = max(self.options.trailing_silence_s, self.options.held_trailing_silence_s)
        return _frames(longest_s if self._held else self.options.trailing_silence_s)

    def _close(self, end_frame: int, cut: bool) -> Optional[Boundary]:
        start, enough = self.start_frame, self.speech_frames >= _frames(self.options.min_speech_s)
        self.start_frame, self._run, self.speech_frames, self._levels, self._silent = None, 0, 0, [], []
        self._held = self._number = False
        if start is None or not enough:
            return None
        return Boundary(start, min(end_frame, self.frame + 1), cut)

    def _cut(self) -> Optional[Boundary]:
        """End in the longest pause of the last few seconds; the rest opens the next utterance."""
        search = _frames(self.options.cut_search_s)
        levels, silent = self._levels[-search:], self._silent[-search:]
        cut_frame = self.frame + 1 - len(levels) + cut_point(np.asarray(silent), np.asarray(levels))
        start = self.start_frame
        assert start is not None
        self._keep_from(cut_frame)
        self.speech_frames = max(1, self.speech_frames // 2)
        return Boundary(start, cut_frame, cut=True)

    def _keep_from(self, frame: int) -> None:
        """The open utterance now starts at ``frame``."""
        assert self.start_frame is not None
        self._levels = self._levels[frame - self.start_frame :]
        self._silent = self._silent[frame - self.start_frame :]
        self.start_frame = frame

    def expected_end(self) -> Optional[Tuple[int, int]]:
        """(start, end) frames the open utterance will have if the caller stays silent from now on."""
        if self.start_frame is None or self.speech_frames < _frames(self.options.min_speech_s):
            return None
        return self.start_frame, self.last_speech_frame + 1 + _frames(self.options.post_roll_s)

    def flush(self) -> Optional[Boundary]:
        """End of stream: the open utterance, if it had enough speech, ends here."""
        if self.start_frame is None:
            return None
        return self._close(min(self.frame, self.last_speech_frame + 1 + _frames(self.options.post_roll_s)), cut=False)


_MIN_PAUSE_FRAMES = 3  # shorter runs of frames without speech are a vowel the VAD took for a tone, or a stop


def cut_point(silent: np.ndarray, levels_dbfs: np.ndarray) -> int:
    """Where to cut a stretch of speech: the middle of its longest run of silent frames (the latest
    of equal runs), or its quietest frame if no run is a pause."""
    best_start, best_length, run_start = 0, 0, None
    for i, quiet in enumerate(np.append(silent, False).tolist()):
        if quiet and run_start is None:
            run_start = i
        elif not quiet and run_start is not None:
            if i - run_start >= best_length:
                best_start, best_length = run_start, i - run_start
            run_start = None
    if best_length < _MIN_PAUSE_FRAMES:
        return int(levels_dbfs.argmin())
    return best_start + best_length // 2
