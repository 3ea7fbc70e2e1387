"""The hallucination guards on hand-made decoding results."""
import torch

from whisper.decoding import DecodingResult
from whisper.stream_guards import needs_fallback, rejection_reason
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


def test_unreliable_results_are_decoded_again_unless_they_look_like_silence():
    assert needs_fallback(result("Plese entr yor pasword", avg_logprob=-1.4))
    assert not needs_fallback(result("Thank you.", avg_logprob=-1.4, no_speech_prob=0.9))
    assert not needs_fallback(result("Please enter your password."))
