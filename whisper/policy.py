"""When a decode is unreliable or invented: temperature fallback, and the guards against Whisper's
inventions on silence, tones and noise.

Pure functions of a result's statistics (text, average log-probability, no-speech probability,
compression ratio), shared by long-form ``transcribe()`` and the streaming scheduler: both read the
same thresholds from a ``FallbackPolicy``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Protocol, Sequence, Tuple, TypeVar

from .loops import writes_digits
from .numbers import MIN_STRING_DIGITS, digits_as_numerals, is_digit_string, is_digit_word

DEFAULT_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


class Decoded(Protocol):
    """What the policy reads of a decoding result."""

    text: str
    language: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    language_probs: Optional[Mapping[str, float]]  # None where the language was not detected
    loops: Tuple[str, ...]  # the loops cut out while decoding (whisper.loops)


ResultT = TypeVar("ResultT", bound=Decoded)


@dataclass(frozen=True)
class FallbackPolicy:
    """When to re-decode at the next temperature, and when a window is silence (None: never)."""

    temperatures: Tuple[float, ...] = DEFAULT_TEMPERATURES
    compression_ratio_threshold: Optional[float] = 2.4
    logprob_threshold: Optional[float] = -1.0
    no_speech_threshold: Optional[float] = 0.6

    def too_compressible(self, result: Decoded) -> bool:
        threshold = self.compression_ratio_threshold
        return threshold is not None and result.compression_ratio > threshold

    def repetitive(self, result: Decoded) -> bool:
        """Too compressible, or a loop was cut out of it while decoding (worth decoding hotter)."""
        return bool(result.loops) or self.too_compressible(result)

    def unlikely(self, result: Decoded) -> bool:
        return self.logprob_threshold is not None and result.avg_logprob < self.logprob_threshold

    def may_be_silence(self, result: Decoded) -> bool:
        return self.no_speech_threshold is not None and result.no_speech_prob > self.no_speech_threshold

    def is_silence(self, result: Decoded) -> bool:
        """Probably no speech, and the decoded text is not confident enough to outvote that."""
        confident = self.logprob_threshold is not None and result.avg_logprob > self.logprob_threshold
        return self.may_be_silence(result) and not confident

    def needs_fallback(self, result: Decoded) -> bool:
        if self.unlikely(result) and self.may_be_silence(result):
            return False  # silence: a hotter decode will not help
        return self.repetitive(result) or self.unlikely(result)

    def likeliest(self, results: Sequence[ResultT]) -> ResultT:
        """Of decodes none of which is reliable, the one to keep: those that are not repetitive
        first, then the likeliest (not the last, hottest sample: on a window where greedy decoding
        looped, the loop cut, the samples at 0.2 to 1.0 were no better, "six, five, seven, niron,
        seven." for 2865707)."""
        return max(results, key=lambda r: (not self.repetitive(r), r.avg_logprob))


def retry_hotter(decode_at: Callable[[float], ResultT], temperatures: Sequence[float],
                 needs_fallback: Callable[[ResultT], bool], result: Optional[ResultT] = None) -> ResultT:  # fmt: skip
    """Decode at each temperature in turn until ``needs_fallback`` is false; ``result``, if given, is
    the decode that came before the first of ``temperatures``."""
    for temperature in temperatures:
        if result is not None and not needs_fallback(result):
            break
        result = decode_at(temperature)
    assert result is not None, "at least one temperature is needed"
    return result


# What Whisper writes on music, line noise and hiss (its training subtitles' stock phrases). A caller's
# real "Thank you." comes with a no-speech probability near 0.02; the inventions with 0.4-0.95.
STOCK_PHRASES = frozenset({
    "you", "thank you", "thanks", "thank you very much", "thank you so much", "thanks for watching",
    "thank you for watching", "bye", "bye bye", "okay", "oh", "so", "uh", "um", "hmm", "mm",
})


@dataclass(frozen=True)
class GuardOptions:
    # The first temperature is the batched greedy decode; unreliable finals are re-decoded at the others.
    fallback: FallbackPolicy = FallbackPolicy(temperatures=(0.0, 0.2, 0.5))
    max_repeats: int = 3  # the same word n-gram this many times in a row is a loop
    # ... and so is a phrase of this many words or more said twice in a row, on audio the model
    # doubts is speech (no-speech above partial_doubtful_no_speech): base wrote "I'm gonna be mad
    # at you. I'm gonna be mad at you." on tt-monkeys at no-speech 0.35, log-probability -1.0.
    doubted_phrase_words: int = 4
    max_words_per_s: float = 6.0  # faster than any caller speaks
    stock_phrase_no_speech: float = 0.4  # a stock phrase is dropped above this no-speech probability
    short_text_no_speech: float = 0.85  # ... and any text of up to 4 words above this one
    # Above this no-speech probability with a log-probability under doubtful_logprob, a text is
    # invented (monkeys, music); real prompts score at most 0.34 (single spelled letters).
    doubtful_no_speech: float = 0.5
    doubtful_logprob: float = -0.5
    # A window the model doubts is speech is not re-decoded hotter when its greedy text is
    # unreliable: sampling there invents sentences that pass the other guards (tt-monkeys, nsp 0.35:
    # "You're gonna have good work like you've done." twice, log-probability -0.96). Real speech
    # that fell back measured 0.04-0.26 (digits; Spanish ordinals with base), and no hot decode of
    # it passed the guards where the greedy one had not.
    resample_max_no_speech: float = 0.3
    # Below this no-speech probability the model is sure there is speech: a text it is unsure of is
    # kept, as transcribe() keeps it, so live loses no such text that offline has. Every window of
    # non-speech that reached the decoder measured 0.31 or more.
    sure_speech_no_speech: float = 0.15
    # A text of digits alone is kept down to this log-probability: a caller's lone "2" decodes at
    # -1.01 (no-speech 0.28), while Whisper's inventions on non-speech are phrases, not numbers.
    digits_logprob: float = -1.5
    # An utterance whose decode at a pause is digits, or one the model would drop or doubt alone,
    # waits for more speech (EndpointOptions.held_trailing_silence_s): decoded alone, lone digits by
    # espeak-ng's voices came out "I" (dropped), "Free", "Zero." dropped as doubtful (no-speech
    # 0.37-0.5); decoded whole, the same numbers came out nearly right. Holding also what is only
    # a little unsure (-0.5, 0.2) held more ordinary speech for no gain on the digits.
    hold_logprob: float = -1.0
    hold_no_speech: float = 0.35
    # ... and so does a lone word the model is only a little unsure of, except in a call known to be
    # in one of these languages (given, or an English-only model; a language detected from a lone
    # word is no proof): base decoded Asterisk's French digits alone as "Toi.", "Ness !", "Sank !"
    # (-0.48 to -0.92), and whole as the number. In English (tiny.en and base alike) holding them
    # gained nothing on digits and held a quarter of the English prompts' finals.
    hold_word_logprob: float = -0.45
    hold_word_exempt_languages: Tuple[str, ...] = ("en",)
    # A held utterance whose decode at a later pause is prose the model is sure of, this many words
    # besides digits, is let go (``releases_hold``): it mentions a number, it is not one. Held to its
    # end, "4 or 6 to decrease or increase the conference volume, 7 or 9 ..." (the rest of a
    # committed menu prompt, held at "4") waited 1.2 s of silence, was never committed in parts
    # and ran to the 28 s number limit: its final came 4-6 s after the words.
    release_prose_words: int = 4
    # A partial is only a preview (its final follows), so its text is doubtful (doubtful_logprob)
    # from this lower no-speech probability: base wrote "Ah! Ah!", "One, two, three." on tt-monkeys
    # as partials at no-speech 0.34-0.48 and log-probability -0.64 to -0.88, which the finals'
    # guards let through and which the finals then dropped.
    partial_doubtful_no_speech: float = 0.3


def _words(result: Decoded) -> list[str]:
    """The words to look for loops in; a number's digits one by one ("4711" -> 4 7 1 1), as a
    grammar writes its answer in one piece."""
    if is_digit_string(result.text, result.language):
        return [c for c in digits_as_numerals(result.text, result.language) if c.isdigit()]
    return re.findall(r"\w+", result.text.lower())


def _repeats(words: list[str], max_repeats: int, language: str, min_size: int = 1) -> bool:
    """A word n-gram ``max_repeats`` times in a row, unless it is one digit repeated: numbers
    repeat digits ("9 1 5 0 0 0 8 0", PIN 1111), which were once dropped here as loops, while a
    repeated pattern of digits is Whisper looping on audio it cannot make out ("1232323232")."""
    for size in range(min_size, 11):  # loops of phrases too ("You're the one who's been here." x3)
        for start in range(0, len(words) - size * max_repeats + 1):
            gram = words[start : start + size]
            if len(set(gram)) == 1 and is_digit_word(gram[0], language):
                continue
            if all(words[start + k * size : start + (k + 1) * size] == gram for k in range(1, max_repeats)):
                return True
    return False


def rejection_reason(result: Decoded, duration_s: float, options: GuardOptions = GuardOptions()) -> Optional[str]:
    """Why a streamed utterance's ``result`` should be treated as no speech, or None to keep it."""
    policy = options.fallback
    if not result.text.strip():
        return "empty"
    if policy.may_be_silence(result) and policy.unlikely(result):
        return "no speech"
    words = re.findall(r"\w+", result.text.lower())
    if " ".join(re.findall(r"[\w']+", result.text.lower())) in STOCK_PHRASES \
            and result.no_speech_prob > options.stock_phrase_no_speech:
        return "stock phrase on no speech"
    if len(words) <= 4 and result.no_speech_prob > options.short_text_no_speech:
        return "no speech (short text)"
    if _doubtful(result, options.doubtful_no_speech, options) and not _digit_string(result, options):
        return "no speech (doubtful text)"
    if any(not writes_digits(unit) for unit in result.loops):
        return "repetitive (a loop of words cut while decoding)"
    # A digit string's repeats are the loop rule's to judge (whisper.loops, which knows how many
    # digits the speech holds): 4111 1111 1111 1111 compresses as well as a loop does.
    if policy.too_compressible(result) and not is_digit_string(result.text, result.language):
        return "repetitive (compression ratio)"
    loop_words = _words(result)
    if _repeats(loop_words, options.max_repeats, result.language):
        return "repetitive (repeated words)"
    if result.no_speech_prob > options.partial_doubtful_no_speech \
            and _repeats(loop_words, 2, result.language, min_size=options.doubted_phrase_words):
        return "repetitive (a phrase twice, on doubtful speech)"
    if len(words) > max(3.0, options.max_words_per_s * duration_s):
        return "too many words for the audio"
    if policy.unlikely(result) and not _kept_though_unsure(result, options):
        return "low confidence"
    return None


def partial_rejection_reason(result: Decoded, duration_s: float, options: GuardOptions = GuardOptions()
                             ) -> Optional[str]:  # fmt: skip
    """Why a partial should not be shown: what would drop a final, or doubt short of it."""
    reason = rejection_reason(result, duration_s, options)
    if reason is None and _doubtful(result, options.partial_doubtful_no_speech, options):
        return "no speech (doubtful partial)"
    return reason


def _doubtful(result: Decoded, no_speech_prob: float, options: GuardOptions) -> bool:
    """Text the model is unsure of, on audio it doubts is speech (above ``no_speech_prob``)."""
    return result.no_speech_prob > no_speech_prob and result.avg_logprob < options.doubtful_logprob


def loops(result: Decoded, options: GuardOptions = GuardOptions()) -> bool:
    """The text repeats itself: too compressible, or a word n-gram ``max_repeats`` times in a row."""
    return options.fallback.repetitive(result) or _repeats(_words(result), options.max_repeats, result.language)


def likeliest(results: Sequence[ResultT], options: GuardOptions = GuardOptions()) -> ResultT:
    """Of decodes none of which is reliable, the one to judge: those that do not loop first (a
    greedy loop often scores the highest log-probability, -0.57 for "You're the best." x6, and is
    then dropped where a sample that does not loop may be kept), then the likeliest."""
    return max(results, key=lambda r: (not loops(r, options), r.avg_logprob))


def _digit_string(result: Decoded, options: GuardOptions) -> bool:
    """A phone number's worth of digits and nothing else, at a log-probability digits reach: what
    the doubt guard keeps (espeak en-us reading 8 8 6 5 oh 3 8 oh, tiny.en at no-speech above 0.5,
    was dropped whole, an empty final; inventions on non-speech are phrases or a few digits)."""
    if not is_digit_string(result.text, result.language) or result.avg_logprob < options.digits_logprob:
        return False
    return len(re.findall(r"\d", digits_as_numerals(result.text, result.language))) >= MIN_STRING_DIGITS


def _kept_though_unsure(result: Decoded, options: GuardOptions) -> bool:
    if result.no_speech_prob < options.sure_speech_no_speech:
        return True
    return is_digit_string(result.text, result.language) and result.avg_logprob >= options.digits_logprob


def wants_more_audio(result: Decoded, options: GuardOptions = GuardOptions()) -> bool:
    """Whether an utterance decoded at a pause should wait longer for the caller to go on: its text
    is digits (callers read numbers in groups), or the model is unsure of it alone (or, unless the
    call is known to be English, of it as a lone word)."""
    if is_digit_string(result.text, result.language):
        return True
    known_exempt = result.language in options.hold_word_exempt_languages and result.language_probs is None
    lone_word = len(re.findall(r"[\w']+", result.text)) == 1
    if lone_word and not known_exempt and result.avg_logprob < options.hold_word_logprob:
        return True
    return result.avg_logprob < options.hold_logprob or result.no_speech_prob > options.hold_no_speech


def releases_hold(result: Decoded, options: GuardOptions = GuardOptions()) -> bool:
    """Whether an utterance held open (``wants_more_audio``) is let go by this later decode: prose
    the model is sure of, ``release_prose_words`` words or more besides digits."""
    if wants_more_audio(result, options):
        return False
    words = [w for w in re.findall(r"[\w']+", result.text) if not is_digit_word(w, result.language)]
    return len(words) >= options.release_prose_words


def needs_fallback(result: Decoded, options: GuardOptions = GuardOptions()) -> bool:
    """Worth decoding a streamed utterance again, hotter: as ``FallbackPolicy`` says, or when it
    loops in a way too short for the compression ratio to tell ("press one" x4), except that a
    result the model doubts is speech is not (unreliable, the guards drop it as it is)."""
    wanted = options.fallback.needs_fallback(result) or loops(result, options)
    return wanted and result.no_speech_prob <= options.resample_max_no_speech
