"""IVR grammars as constrained decoding, on the Asterisk voice's real digits and prompts."""
import re

import numpy as np
import shutil

import pytest
import torch

from audiosocket_bridge.testing.prompts import prompt
from whisper.audio import SAMPLE_RATE_HZ, load_audio, log_mel_spectrogram, pad_or_trim
from whisper.decoding import DecodingOptions, decode
from whisper.grammar import YES_NO, Choices, Digits, parse_grammar


def spoken_digits(digits: str, gap_s: float = 0.25) -> np.ndarray:
    gap = np.zeros(int(gap_s * SAMPLE_RATE_HZ), np.float32)
    return np.concatenate([piece for d in digits for piece in (load_audio(prompt(f"digits/{d}").path), gap)])


def decode_with(model, audio: np.ndarray, grammar=None) -> str:
    mel = log_mel_spectrogram(torch.from_numpy(pad_or_trim(audio)), model.dims.n_mels)
    options = DecodingOptions(without_timestamps=True, grammar=grammar)
    return decode(model, mel, options).text


@pytest.mark.parametrize("spec, grammar", [
    ("digits", Digits()), ("digits:4", Digits(4, 4)), ("digits:4-10", Digits(4, 10)),
    ("digits:1-3:*#", Digits(1, 3, True)), ("yesno", YES_NO),
    ("choices:sales|support|billing", Choices(("sales", "support", "billing"))),
])
def test_dialplan_forms(spec, grammar):
    assert parse_grammar(spec) == grammar


@pytest.mark.parametrize("spec", ["digits:10-4", "digits:x", "digits:4:+", "choices:", "colour", "yesno:x"])
def test_bad_forms_are_refused_with_the_rule(spec):
    with pytest.raises(ValueError):
        parse_grammar(spec)


def test_answers_in_canonical_form():
    assert Digits(4, 6).answer("4, 7, 1, 1.") == "4711"
    assert Digits(4, 6).answer("4 7") is None
    assert YES_NO.answer(" Yeah.") == "yes" and YES_NO.answer("No!") == "no"
    assert Choices(("sales", "support")).answer("Support.") == "support"
    assert Choices(("sales", "support")).answer("the weather") is None


def test_digit_string_comes_out_as_numerals_only(tiny_model):
    text = decode_with(tiny_model, spoken_digits("4071958"), Digits(4, 10))
    assert set(text) <= set("0123456789 ,.-") and Digits(4, 10).answer(text) == "4071958"


@pytest.mark.parametrize("digits, gap_s", [("8857759", 0.6), ("4466", 0.8)])
def test_repeated_digits_read_with_pauses_are_all_kept(tiny_model, digits, gap_s):
    """Whisper writes them as "8, 8, 5"; a grammar without its commas made it skip a repeat."""
    text = decode_with(tiny_model, spoken_digits(digits, gap_s), Digits(4, 10))
    assert Digits(4, 10).answer(text) == digits, text
    assert not re.search(r"[,.-]\s*[,.-]", text) and not re.match(r"\s*[,.-]", text)  # separators between digits


def test_length_range_is_enforced(tiny_model):
    """Seven digits spoken, exactly four allowed: the decoder must stop after four."""
    text = decode_with(tiny_model, spoken_digits("4071958"), Digits(4, 4))
    assert len("".join(c for c in text if c.isdigit())) == 4


def test_choices_pick_the_spoken_word(tiny_model):
    grammar = Choices(("hello", "goodbye", "operator"))
    assert grammar.answer(decode_with(tiny_model, load_audio(prompt("vm-goodbye").path), grammar)) == "goodbye"
    assert YES_NO.answer(decode_with(tiny_model, load_audio(prompt("vm-no").path), YES_NO)) == "no"


def test_grammar_needs_a_decode_without_timestamps(tiny_model):
    mel = log_mel_spectrogram(torch.zeros(SAMPLE_RATE_HZ * 30), tiny_model.dims.n_mels)
    with pytest.raises(ValueError, match="without_timestamps"):
        decode(tiny_model, mel, DecodingOptions(grammar=YES_NO))


def test_streamed_digits_with_a_grammar_come_out_as_one_number(tiny_model):
    """Live: a digit string read with pauses, streamed; with the grammar every final is numerals."""
    from whisper.streaming.sim import simulate
    from whisper.streaming.types import StreamOptions
    from whisper.streaming import EngineOptions, StreamingEngine

    pcm = (np.clip(spoken_digits("31415", gap_s=0.3), -1, 1) * 32767).astype("<i2").tobytes()
    pcm = _resample_to_8k(pcm)
    engine = StreamingEngine(tiny_model, EngineOptions())
    events = simulate(engine, pcm + bytes(16000), 8000, StreamOptions(grammar="digits:1-10"))
    finals = [e.text for e in events if e.is_final and e.text]
    assert "".join(finals) == "31415" and all(text.isdigit() for text in finals)


def test_a_bad_grammar_is_refused_when_the_stream_opens(tiny_model):
    from whisper.streaming.types import StreamOptions
    from whisper.streaming import EngineOptions, StreamingEngine

    with pytest.raises(ValueError, match="unknown grammar"):
        StreamingEngine(tiny_model, EngineOptions()).open_stream("x", StreamOptions(grammar="colours"))


def _resample_to_8k(pcm16k: bytes) -> bytes:
    from audiosocket_bridge.testing.prompts import resample_pcm

    return resample_pcm(pcm16k, 16000, 8000)


def test_the_dialplan_sets_a_grammar_per_call_and_a_bad_one_is_refused():
    from audiosocket_bridge.registrations import CallOptions

    assert CallOptions.from_fields({"Grammar": "digits:4-10"}).grammar == "digits:4-10"
    assert CallOptions.from_fields({"grammar": ""}).grammar is None
    with pytest.raises(ValueError, match="unknown grammar"):
        CallOptions.from_fields({"grammar": "colours"})


def test_confidence_is_set_just_before_transcript():
    from audiosocket_bridge.asterisk.variables import answer_confidence, transcript_variables

    names = [name for name, _ in transcript_variables(["4711"], 1, "4711", confidence=answer_confidence(-0.1))]
    assert names[-2:] == ["TRANSCRIPT_CONFIDENCE", "TRANSCRIPT"]
    assert dict(transcript_variables(["4711"], 1, "4711", confidence=0.904))["TRANSCRIPT_CONFIDENCE"] == "0.90"
    assert "TRANSCRIPT_CONFIDENCE" not in dict(transcript_variables(["hi"], 1, "hi"))


def test_a_digits_grammar_waits_longer_before_ending_an_utterance():
    from whisper.streaming.endpointing import EndpointOptions
    from whisper.streaming.stream import _endpointing
    from whisper.streaming.types import StreamOptions

    default = EndpointOptions()
    assert _endpointing(default, StreamOptions(grammar="digits:4")).trailing_silence_s == 1.2
    assert _endpointing(default, StreamOptions(grammar="yesno")) == default
    assert _endpointing(default, StreamOptions(grammar="digits", trailing_silence_s=0.8)).trailing_silence_s == 0.8


def test_a_number_read_in_groups_is_one_answer_across_finals():
    from audiosocket_bridge.asterisk.variables import CallCaptionState
    from audiosocket_bridge.audiosocket.ivr import IVR_FINAL, IvrPolicy
    from audiosocket_bridge.registrations import CallOptions

    grammar = Digits(7, 7)
    assert grammar.utterance_answer("4 0 7") == "407" and grammar.answer("407") is None
    policy = IvrPolicy.for_options(CallOptions(mode="ivr", grammar="digits:7"))
    assert policy.after_final("407") is None and policy.after_final("1958") == IVR_FINAL
    state = CallCaptionState()
    state.final_setvars("PJSIP/a-1", "407", 0.9, grammar)
    variables = {a["Variable"]: a["Value"] for a in state.final_setvars("PJSIP/a-1", "1958", 0.9, grammar)}
    assert variables["TRANSCRIPT"] == "4071958" and variables["TRANSCRIPT_SEGMENTS"] == "2"
    assert Choices(("sales", "support")).join(["sales", "support"]) == "support"


@pytest.mark.parametrize("text, written", [
    (" Three", " 3"), (" Four.", " 4."), (" 4, 1", " 4, 1"), (" Eight, one.", " 8, 1."),
    (" Oh.", " Oh."), (" one of them", " one of them"), (" Oh, 4.", " 0, 4."),
])
def test_an_utterance_of_digits_only_is_written_in_numerals(text, written):
    from whisper.numbers import digits_as_numerals

    assert digits_as_numerals(text) == written


@pytest.mark.parametrize("language, text, written", [
    ("es", "¡Ocho!", "¡8!"), ("es", "cuatro o seis", "cuatro o seis"), ("it", "Otto, sei.", "8, 6."),
    ("fr", "Un.", "1."), ("ru", "Четыре.", "4."), ("de", "Zwo, null.", "2, 0."), ("pt", "Meia.", "6."),
    ("es", "Three", "Three"), ("en", "Quattro.", "Quattro."), ("ja", "Three", "Three"),
])
def test_digits_are_written_in_numerals_in_the_utterances_own_language(language, text, written):
    from whisper.numbers import digits_as_numerals, is_digit_string

    assert digits_as_numerals(text, language) == written
    assert is_digit_string(text, language) == any(c.isdigit() for c in written)


@pytest.mark.parametrize("language, text, written", [
    ("ru", "Четыре. Один. Девять. Два. Тять. Четыре.", "4. 1. 9. 2. Тять. 4."),  # base, a misheard "пять"
    ("en", " My PIN is one two three four.", " My PIN is 1 2 3 4."),
    ("en", " Press one, two or three.", " Press 1, 2 or 3."),
    ("en", " one or two", " one or two"), ("en", " two, three days", " two, three days"),
    ("en", " I have two dogs and three cats.", " I have two dogs and three cats."),
    ("en", " Oh, oh, oh!", " Oh, oh, oh!"),
])
def test_digit_words_that_read_as_a_number_amid_other_words_are_numerals(language, text, written):
    """Three digit words in a row, or with one other word between two of them: one misheard digit
    does not leave the rest of a number in words, which IVR code comparing numerals cannot read."""
    from whisper.numbers import digits_as_numerals, is_digit_string, pieces_as_numerals

    assert digits_as_numerals(text, language) == written
    assert not is_digit_string(text, language)
    pieces = [" " + word for word in text.split()]  # an utterance's timed words say the same
    assert pieces_as_numerals(pieces, language) == [" " + word for word in written.split()]


def test_a_number_read_in_one_breath_keeps_its_repeated_digits(tiny_model):
    """"0 0 0" is a number, not a loop: the repeated-words guard once dropped the whole final."""
    from audiosocket_bridge.testing.voices import read_number
    from whisper.streaming import EngineOptions, StreamingEngine
    from whisper.streaming.sim import simulate
    from whisper.streaming.types import StreamOptions

    said = "91500080"
    pcm = read_number("en", said, pause_s=0.15)
    events = simulate(StreamingEngine(tiny_model, EngineOptions()), pcm, 8000, StreamOptions(partials=False))
    finals = [e.text for e in events if e.is_final]
    assert "".join(c for t in finals for c in t if c.isdigit()) == said, finals


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_numbers_read_with_pauses_by_another_voice_lose_far_fewer_digits_held_open(tiny_model):
    """espeak-ng's voice, not Asterisk's: its lone digits decoded alone come out "I", "time" or
    are dropped as doubtful. Held open at the pauses (EngineOptions.hold_unsure), a number is
    decoded with what follows it."""
    import random

    from benchmarks.telephone_accuracy import digit_call, digit_error_rate, live
    from audiosocket_bridge.testing.voices import digit_recordings
    from whisper.streaming import EngineOptions, StreamingEngine

    rng, voice = random.Random(2), digit_recordings("espeak:en-us")
    calls = [digit_call(rng, voice) for _ in range(3)]
    alone = StreamingEngine(tiny_model, EngineOptions(hold_unsure=False))
    held = StreamingEngine(tiny_model, EngineOptions())
    alone_rate = digit_error_rate(calls, lambda pcm: live(alone, pcm))
    held_rate = digit_error_rate(calls, lambda pcm: live(held, pcm))
    assert held_rate <= alone_rate / 2, (held_rate, alone_rate)


def test_a_live_digit_string_read_with_pauses_comes_out_whole(tiny_model):
    """No grammar, partials on as the bridge runs calls: read with pauses of 0.6 s over 14 s, the
    number is one final in numerals, held open at its pauses and not cut at 12 s."""
    from audiosocket_bridge.testing.voices import read_number
    from whisper.streaming import EngineOptions, StreamingEngine
    from whisper.streaming.sim import simulate
    from whisper.streaming.types import StreamOptions

    said = "8344978690"
    pcm = read_number("en", said, pause_s=0.6)
    events = simulate(StreamingEngine(tiny_model, EngineOptions()), pcm, 8000, StreamOptions(partials=True))
    finals = [e.text for e in events if e.is_final and e.text.strip()]
    assert len(finals) == 1 and "".join(c for c in finals[0] if c.isdigit()) == said, finals
    assert not any(c.isalpha() for e in events for c in e.text), [e.text for e in events]
