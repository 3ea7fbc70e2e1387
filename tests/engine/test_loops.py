"""Decoding loops are stopped as they grow and cut, in every decode; real repeated digits stay."""
import random
import re
import shutil

import pytest
import torch

from whisper.loops import LoopFilter, LoopRule, cut_loops
from whisper.tokenizer import get_tokenizer

TOKENIZER = get_tokenizer(True, language="en")
# One digit more than 8 times in a row, or a pattern of several digits 4 times: what no caller says.
LOOP = re.compile(r"(\d)(?:\W*\1){8}|(\d\W*\d(?:\W*\d){0,6})(?:\W*\2){3}")


def cut(text: str) -> str:
    kept, _ = cut_loops(TOKENIZER.encode(text), LoopRule(), TOKENIZER)
    return TOKENIZER.decode(kept)


@pytest.mark.parametrize("text", [
    " 0 0 0 0 0 0 0 0", " 8, 8, 8.", " 4444 4444", " 4444 3333 2222 1111", " 1000000", " 3 2 3 2 3 2",
    " 5 5 5 1 2 3 4, 5 5 5 1 2 3 4", " no, no, no, no", " 9 1 5 0 0 0 8 0",
])  # fmt: skip
def test_repeated_digits_and_words_a_caller_says_are_not_loops(text):
    assert cut(text) == text


@pytest.mark.parametrize("text, kept", [
    (" 1-8-2-9-0-4-3-3-3-3-3-3-3-3-3-3-3-3-3-3-3-3-3", " 1-8-2-9-0-4-3"),
    (" 9, 1, 0, 5, 9, 8, 6, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8", " 9, 1, 0, 5, 9, 8, 6, 8"),
    (" 0 0 0 0 0 0 0 0 0", " 0"),
    (" 3 2 3 2 3 2 3 2", " 3 2"),
    (" Thank you. Thank you. Thank you. Thank you. Thank you. Thank you.", " Thank you."),
    (" tre tre tre tre tre tre tre tre tre", " tre"),  # digit words too, in any language
    (" 7, 7, 9, 9, 9, 9, 9, 9, 9, 9, 8, 8, 8, 9, 9, 9, 9, 9, 9, 9, 8, 8, 8, 8", " 7, 7, 9"),  # few digits
])  # fmt: skip
def test_loops_are_cut_to_their_first_copy(text, kept):
    assert cut(text) == kept


@pytest.mark.parametrize("text, speech_s, kept", [
    (" 4111 1111 1111 1111", 6.0, " 4111 1111 1111 1111"),  # the Visa test number, in groups
    (" 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1", 6.0, " 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1"),  # digit by digit
    (" 5, 0, 0, 0, 0, 0, 0, 0, 0, 0", 3.0, " 5, 0, 0, 0, 0, 0, 0, 0, 0, 0"),
    (" 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1", 3.0, " 4 1"),  # 16 digits in 3 s of speech: a loop
    (" 1-8-2-9-0-4-3-3-3-3-3-3-3-3-3-3-3-3-3-3-3-3-3", 3.0, " 1-8-2-9-0-4-3"),
    (" 4111 1111 1111 1111", None, " 4111 1111"),  # the speech unknown: the rule alone
    (" 3 2 3 2 3 2 3 2", 30.0, " 3 2"),  # only a run of one digit may be real, however long the speech
    (" 4" + " 1" * 16, 10.0, " 4" + " 1" * 16),  # 16 of one digit: as long as a real run gets
    (" 4" + " 1" * 24, 10.0, " 4 1"),  # 24 ones (tiny.en's for the Visa number's 15): never real
])  # fmt: skip
def test_a_run_of_one_digit_is_kept_where_the_speech_holds_it(text, speech_s, kept):
    tokens, rule = TOKENIZER.encode(text), LoopRule()
    assert TOKENIZER.decode(cut_loops(tokens, rule, TOKENIZER, speech_s)[0]) == kept
    loop_filter = LoopFilter(rule, TOKENIZER, 0, [speech_s])  # the filter agrees: it lets through what is kept
    for end in range(1, len(tokens)):
        logits = torch.zeros(1, TOKENIZER.eot + 1)
        loop_filter.apply(logits, torch.tensor([tokens[:end]]))
        if kept == text:
            assert torch.isfinite(logits[0, tokens[end]]), TOKENIZER.decode(tokens[: end + 1])


@pytest.mark.parametrize("spaced", [True, False])
def test_the_filter_stops_a_run_of_one_digit_at_the_last_digit_the_speech_holds(spaced):
    rule = LoopRule()
    held = 15
    one = TOKENIZER.encode(" 1")[0] if spaced else TOKENIZER.encode("1")[0]
    written = TOKENIZER.encode(" 4") + [one] * (held - 1)  # 15 digits
    for speech_s, stops in ((held * rule.digit_s, True), ((held + 1) * rule.digit_s, False)):
        logits = torch.zeros(1, TOKENIZER.eot + 1)
        LoopFilter(rule, TOKENIZER, 0, [speech_s]).apply(logits, torch.tensor([written]))
        assert bool(torch.isinf(logits[0, one])) == stops, speech_s


def test_speech_is_the_loud_part_of_a_window_at_least_a_fifth_of_a_second_per_digit():
    from whisper.audio import int16_to_float, log_mel_spectrogram, resample
    from whisper.loops import speech_s
    from audiosocket_bridge.testing.voices import read_number

    for voice in ("en", "es", "espeak:en-us"):
        said = "4111111111111111"
        pcm = read_number(voice, said, pause_s=0.3, tail_s=2.0)
        mel = log_mel_spectrogram(torch.from_numpy(resample(int16_to_float(pcm), 8000)))
        seconds = speech_s(mel, mel.shape[-1])
        assert LoopRule().digit_s * len(said) < seconds < len(pcm) / 16000 - 0.3 * len(said) - 2.0, (voice, seconds)
    silence = log_mel_spectrogram(torch.zeros(16000 * 5))
    assert speech_s(silence, silence.shape[-1]) == 0.0


def test_the_filter_stops_a_loop_once_it_is_one_and_never_before():
    rule = LoopRule()
    loop_filter = LoopFilter(rule, TOKENIZER, sample_begin=0)
    eight = TOKENIZER.encode(" 8,")
    for copies in range(1, 12):
        sampled = eight * copies
        logits = torch.zeros(1, TOKENIZER.eot + 1)
        loop_filter.apply(logits, torch.tensor([sampled]))
        is_loop = copies > rule.max_same_digit
        assert bool(torch.isinf(logits[0, eight[0]])) == is_loop, copies
        assert cut_loops(sampled, rule, TOKENIZER)[1] == (() if not is_loop else (TOKENIZER.decode(sampled),))
        assert torch.isfinite(logits[0, TOKENIZER.eot])


def test_a_grammar_left_with_nothing_may_still_end():
    from whisper.grammar import Choices

    one_phrase = Choices(("ha " * 13,))  # a choice the loop rule cuts after 12 "ha"
    grammar_filter = one_phrase.logit_filter(TOKENIZER, 0)
    loop_filter = LoopFilter(LoopRule(), TOKENIZER, 0)
    sampled = TOKENIZER.encode(" ha" * 12)
    logits = torch.zeros(1, TOKENIZER.eot + 1)
    for step in (grammar_filter, loop_filter):
        step.apply(logits, torch.tensor([sampled]))
    assert torch.isfinite(logits[0]).nonzero().squeeze(1).tolist() == [TOKENIZER.eot]


def has_loop(text: str) -> bool:
    return LOOP.search(text) is not None


@pytest.fixture(scope="module")
def digit_calls():
    """Seven-to-ten-digit numbers read by espeak-ng's en-us voice with pauses (seed 1)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    from benchmarks.telephone_accuracy import digit_call
    from audiosocket_bridge.testing.voices import digit_recordings

    rng, voice = random.Random(1), digit_recordings("espeak:en-us")
    return [digit_call(rng, voice) for _ in range(7)]


@pytest.fixture(scope="module")
def looping_call(digit_calls):
    """A window tiny.en loops on, on every CPU: greedy, it writes "to 865707" and then "07" until its
    tokens run out (and with white noise 32 dB under the speech added, on 1 and 2 threads: not a matter of rounding)."""
    said, pcm = digit_calls[4]
    assert said == "2865707"
    return said, pcm


@pytest.fixture(scope="module")
def number_call(digit_calls):
    """88360759: on some CPUs tiny.en writes it twice and then nines (greedy, without the rule),
    on others once; with the rule, on all of them, once and whole."""
    said, pcm = digit_calls[6]
    assert said == "88360759"
    return said, pcm


def offline_audio(pcm: bytes):
    from whisper.audio import int16_to_float, resample

    return resample(int16_to_float(pcm), 8000)


def test_offline_the_window_loops_without_the_rule_and_not_with_it(tiny_model, looping_call, number_call):
    audio = offline_audio(looping_call[1])
    unchecked = tiny_model.transcribe(audio, temperature=0.0, loop_rule=None)["text"]
    assert has_loop(unchecked), unchecked  # the window does make the decoder loop
    for said, pcm in (looping_call, number_call):
        for options in (dict(temperature=0.0), dict(temperature=0.0, beam_size=5, sample_len=64)):
            result = tiny_model.transcribe(offline_audio(pcm), **options)
            assert not has_loop(result["text"]), (options, result["text"])
            assert not any(has_loop(segment["text"]) for segment in result["segments"])
            assert len(result["text"]) < len(unchecked) / 2, result["text"]  # stopped, not only broken up
            if said == number_call[0]:
                assert re.sub(r"\D", "", result["text"]).startswith(said), (options, result["text"])


def test_live_no_event_has_a_loop_and_the_number_survives(tiny_model, number_call):
    from benchmarks.telephone_accuracy import written_digits
    from whisper.streaming import EngineOptions, StreamingEngine
    from whisper.streaming.sim import simulate
    from whisper.streaming.types import StreamOptions

    said, pcm = number_call
    engine = StreamingEngine(tiny_model, EngineOptions())
    for grammar in (None, "digits"):
        events = simulate(engine, pcm, 8000, StreamOptions(partials=True, grammar=grammar))
        assert events and not any(has_loop(e.text) for e in events), [e.text for e in events]
        finals = " ".join(e.text for e in events if e.is_final)
        assert written_digits(finals) == said, (grammar, finals)


def test_a_number_with_real_repeats_keeps_them_offline_and_live(tiny_model):
    """Four zeros, three eights, a 4444: real repeats, read by Asterisk's voice, are kept whole."""
    from audiosocket_bridge.testing.voices import read_number
    from whisper.numbers import digits_as_numerals
    from whisper.streaming import EngineOptions, StreamingEngine
    from whisper.streaming.sim import simulate
    from whisper.streaming.types import StreamOptions

    for said in ("400008881", "58884444"):
        pcm = read_number("en", said, pause_s=0.2)
        offline = tiny_model.transcribe(offline_audio(pcm), temperature=0.0)["text"]
        events = simulate(StreamingEngine(tiny_model, EngineOptions()), pcm, 8000, StreamOptions(partials=True))
        live = " ".join(e.text for e in events if e.is_final)
        assert re.sub(r"\D", "", digits_as_numerals(offline)) == said, offline
        assert re.sub(r"\D", "", live) == said, live


def test_a_long_run_of_one_digit_is_kept_where_the_speech_holds_it(tiny_model):
    """50000000 read by Asterisk's voice: tiny.en writes its 7 zeros as 9, more than the rule's 8 in
    a row, which were once cut to one zero ("5, 0"); the 4.5 s of speech hold them, so they stay,
    offline and live. (tiny.en and base write 200 ones for the 15 of 4111 1111 1111 1111: that,
    more than the speech holds, is still a loop and cut.)"""
    from audiosocket_bridge.testing.voices import read_number
    from whisper.streaming import EngineOptions, StreamingEngine
    from whisper.streaming.sim import simulate
    from whisper.streaming.types import StreamOptions

    pcm = read_number("en", "50000000", pause_s=0.3)
    offline = tiny_model.transcribe(offline_audio(pcm), temperature=0.0)["text"]
    events = simulate(StreamingEngine(tiny_model, EngineOptions()), pcm, 8000, StreamOptions(partials=True))
    live = " ".join(e.text for e in events if e.is_final)
    for text in (offline, live):
        digits = re.sub(r"\D", "", text)
        assert digits.startswith("5") and digits[1:] == "0" * (len(digits) - 1) and len(digits) >= 8, text
