"""The hallucination guards and temperature fallback on hand-made decoding results."""
from dataclasses import replace

import torch

from whisper.decoding import DecodingResult
from whisper.policy import FallbackPolicy, GuardOptions, needs_fallback, rejection_reason, retry_hotter
from whisper.text_metrics import compression_ratio


def result(text: str, avg_logprob: float = -0.2, no_speech_prob: float = 0.05) -> DecodingResult:
    return DecodingResult(audio_features=torch.zeros(1), language="en", text=text, avg_logprob=avg_logprob,
                          no_speech_prob=no_speech_prob, compression_ratio=compression_ratio(text))


def test_confident_speech_is_kept():
    assert rejection_reason(result("Please enter your password."), duration_s=2.5) is None


def test_silence_looking_results_are_dropped():
    assert rejection_reason(result("Thank you.", avg_logprob=-1.3, no_speech_prob=0.8), 2.0) == "no speech"
    assert rejection_reason(result(""), 2.0) == "empty"


def test_loops_and_impossible_word_rates_are_dropped():
    assert rejection_reason(result("Thank you. " * 20), 10.0).startswith("repetitive")
    assert rejection_reason(result("press one press one press one"), 5.0) == "repetitive (repeated words)"
    assert rejection_reason(result("one two three four five six seven eight nine ten"), 1.0) == \
        "too many words for the audio"


def test_numbers_that_repeat_a_digit_are_not_loops():
    for text in ("9 1 5 0 0 0 8 0", "1, 1, 1, 1.", "My PIN is 1 1 1 1.", "zero zero zero seven"):
        assert rejection_reason(result(text), 4.0) is None and not needs_fallback(result(text)), text
    ocho = replace(result("ocho ocho ocho dos"), language="es")
    assert rejection_reason(ocho, 4.0) is None
    assert rejection_reason(result("one more one more one more"), 5.0) == "repetitive (repeated words)"
    for looping in ("1232323232", "3 2 3 2 3 2 3 2", "1, 2, 3, 4, 3, 4, 3, 4."):  # base on a voice it can't follow
        assert rejection_reason(result(looping), 10.0) == "repetitive (repeated words)", looping
    assert rejection_reason(result("1000000"), 3.0) is None and rejection_reason(result("91500080"), 3.0) is None


def test_digits_and_unsure_fragments_wait_for_more_audio_and_confident_speech_does_not():
    from whisper.policy import wants_more_audio

    assert wants_more_audio(result("4, 7."))
    assert wants_more_audio(result("Zero."))
    assert wants_more_audio(result("I", avg_logprob=-1.1))
    assert wants_more_audio(result("Free", avg_logprob=-0.6, no_speech_prob=0.5))
    assert not wants_more_audio(result("Please enter your password."))
    assert not wants_more_audio(result("Yes."))
    # a lone word the model is a little unsure of waits, outside English only
    assert wants_more_audio(replace(result("Toi.", avg_logprob=-0.48), language="fr"))
    assert not wants_more_audio(replace(result("Oui.", avg_logprob=-0.2), language="fr"))
    assert not wants_more_audio(replace(result("Il est parti.", avg_logprob=-0.6), language="fr"))
    assert not wants_more_audio(result("Sales.", avg_logprob=-0.6))  # English given, or an English-only model
    # English detected from a lone word is no proof: a French digit may have been taken for English
    assert wants_more_audio(replace(result("Sales.", avg_logprob=-0.6), language_probs={"en": 0.6, "fr": 0.3}))


def test_unreliable_results_are_decoded_again_unless_they_look_like_silence():
    assert needs_fallback(result("Plese entr yor pasword", avg_logprob=-1.4))
    assert not needs_fallback(result("Thank you.", avg_logprob=-1.4, no_speech_prob=0.9))
    assert not needs_fallback(result("Please enter your password."))


def test_the_guards_read_their_thresholds_from_the_fallback_policy():
    lenient = GuardOptions(fallback=FallbackPolicy(logprob_threshold=-2.0))
    unsure = result("Plese entr yor pasword", avg_logprob=-1.4, no_speech_prob=0.2)
    assert rejection_reason(unsure, 2.0) == "low confidence" and rejection_reason(unsure, 2.0, lenient) is None
    assert needs_fallback(unsure) and not needs_fallback(unsure, lenient)


def test_streamed_results_that_may_be_silence_are_not_decoded_again():
    looping = result("Thank you. " * 20, no_speech_prob=0.8)  # confident, repetitive, maybe silence
    assert FallbackPolicy().needs_fallback(looping)  # long-form transcription tries hotter
    assert not needs_fallback(looping) and rejection_reason(looping, 10.0).startswith("repetitive")


def test_unsure_text_is_kept_where_the_model_is_sure_of_speech():
    """As transcribe() keeps it; tt-monkeys' unsure inventions scored no-speech 0.31 and more."""
    unsure_words = result("Press the pound key.", avg_logprob=-1.2, no_speech_prob=0.05)
    assert rejection_reason(unsure_words, 2.0) is None
    assert rejection_reason(result("Press the pound key.", avg_logprob=-1.2, no_speech_prob=0.2), 2.0) == \
        "low confidence"
    assert rejection_reason(result("You're gonna have good work like you are.", avg_logprob=-1.6,
                                   no_speech_prob=0.35), 10.0) == "low confidence"


def test_unsure_digits_are_kept_unless_very_unsure():
    """The Asterisk voice's lone "2" in a read-out number: no-speech 0.28, log-probability -1.01."""
    assert rejection_reason(result("2", avg_logprob=-1.01, no_speech_prob=0.28), 1.0) is None
    assert rejection_reason(result("Three.", avg_logprob=-1.2, no_speech_prob=0.28), 1.0) is None
    assert rejection_reason(result("2", avg_logprob=-1.8, no_speech_prob=0.28), 1.0) == "low confidence"
    assert rejection_reason(result("Two of them.", avg_logprob=-1.01, no_speech_prob=0.28), 1.0) == "low confidence"
    assert rejection_reason(result("2", avg_logprob=-1.2, no_speech_prob=0.8), 1.0) == "no speech"


def test_windows_the_model_doubts_are_not_sampled_hotter():
    """Hot samples of tt-monkeys (no-speech 0.35) gave sentences that passed every other guard."""
    monkeys = result("You're the best. " * 6, avg_logprob=-0.57, no_speech_prob=0.35)
    assert FallbackPolicy().needs_fallback(monkeys) and not needs_fallback(monkeys)
    assert needs_fallback(result("5", avg_logprob=-1.04, no_speech_prob=0.11))  # a real, spliced digit
    assert needs_fallback(monkeys, GuardOptions(resample_max_no_speech=0.5))


def test_retry_hotter_stops_at_the_first_reliable_result():
    tried = []

    def decode_at(temperature):
        tried.append(temperature)
        return result("Please enter your password.", avg_logprob=-1.4 if temperature < 0.4 else -0.3)

    assert retry_hotter(decode_at, (0.0, 0.2, 0.4, 0.6), FallbackPolicy().needs_fallback).avg_logprob == -0.3
    assert tried == [0.0, 0.2, 0.4]
    tried.clear()
    first = result("Please enter your password.")
    assert retry_hotter(decode_at, (0.2, 0.5), needs_fallback, first) is first and tried == []


def test_a_loop_cut_while_decoding_is_decoded_again_and_only_a_loop_of_words_drops_the_result():
    digits = replace(result("1-8-2-9-0-4-3"), loops=("-3-3-3-3-3-3-3-3-3",))
    words = replace(result("Please hold."), loops=(" Thank you. Thank you. Thank you. Thank you.",))
    assert needs_fallback(digits) and needs_fallback(words)
    assert rejection_reason(digits, 5.0) is None
    assert rejection_reason(words, 5.0) == "repetitive (a loop of words cut while decoding)"
    assert FallbackPolicy().likeliest([digits, result("1 8 2 9", avg_logprob=-1.2)]).text == "1 8 2 9"


def test_a_doubted_phone_number_is_kept_a_doubted_phrase_or_few_digits_are_not():
    """tiny.en on espeak en-us reading 8 8 6 5 oh 3 8 oh: no-speech above 0.5, log-probability
    under -0.5, dropped whole (an empty final); inventions on non-speech are phrases or a few digits."""
    doubted = dict(avg_logprob=-0.8, no_speech_prob=0.6)
    assert rejection_reason(result("8, 8, 6, 5, 3, 8, 4,", **doubted), 5.0) is None
    assert rejection_reason(result("886.5 or 0.380.", **doubted), 5.0) is None
    for text in ("One, two, three.", "I'm gonna be mad at you.", "8, 8, 6, 5, 3, 8, 4, please"):
        assert rejection_reason(result(text, **doubted), 5.0) == "no speech (doubtful text)", text
    unlikely = dict(avg_logprob=-1.6, no_speech_prob=0.6)  # below what digits reach: no exemption
    assert rejection_reason(result("8, 8, 6, 5, 3, 8, 4,", **unlikely), 5.0) is not None
