"""No words from a line without speech: tones, DTMF, call progress, fax, noise, music on hold.

Real weights, real Asterisk sounds and sox-made tones, fed through the streaming engine as a call
(deterministic simulation), partials included; a caller's real "Thank you." still comes through.
"""
import pytest

from audiosocket_bridge.testing.nonspeech import non_speech
from audiosocket_bridge.testing.prompts import prompt
from whisper.streaming.sim import simulate
from whisper.streaming.types import StreamOptions
from whisper.streaming import EngineOptions, StreamingEngine
from whisper.policy import rejection_reason

SOUNDS = non_speech()


@pytest.fixture(scope="module")
def engine(tiny_model):
    return StreamingEngine(tiny_model, EngineOptions())


@pytest.mark.parametrize("name", sorted(SOUNDS))
def test_non_speech_gives_no_words(engine, name):
    events = simulate(engine, SOUNDS[name], 8000, StreamOptions(partials=True), stream_id=name)
    assert [(e.kind, e.text) for e in events if e.text.strip()] == []


@pytest.mark.parametrize("offset_ms", [10, 30])
def test_no_words_wherever_the_frames_fall(engine, offset_ms, monkeypatch):
    """tt-monkeys, the sound nearest to speech, shifted by part of a frame: other windows, other
    near-ties. A hot sample of it once gave "You're gonna have good work like you've been talking
    about." twice, so no window of it may be sampled hotter at all."""
    temperatures = []
    decode = engine.decoder.decode

    def recording_decode(jobs, temperature, poll, on_result=None):
        temperatures.append(temperature)
        return decode(jobs, temperature, poll, on_result)

    monkeypatch.setattr(engine.decoder, "decode", recording_decode)
    pcm = bytes(offset_ms * 16) + SOUNDS["tt-monkeys"]
    events = simulate(engine, pcm, 8000, StreamOptions(partials=True), stream_id=f"monkeys+{offset_ms}")
    assert [(e.kind, e.text) for e in events if e.text.strip()] == []
    assert temperatures and set(temperatures) == {0.0}


@pytest.mark.parametrize("name, text", [("auth-thankyou", "thank you"), ("vm-goodbye", "goodbye")])
def test_real_short_answers_are_kept(engine, name, text):
    events = simulate(engine, prompt(name).pcm + bytes(16000), 8000, StreamOptions(), stream_id=name)
    finals = [e.text for e in events if e.is_final and e.text.strip()]
    assert len(finals) == 1 and text in finals[0].lower().replace(",", "")


class Result:
    def __init__(self, text: str, no_speech_prob: float, avg_logprob: float = -0.6):
        self.text, self.no_speech_prob, self.avg_logprob, self.compression_ratio = text, no_speech_prob, avg_logprob, 1.0
        self.language, self.language_probs, self.loops = "en", None, ()


def test_stock_phrases_need_the_model_to_doubt_speech():
    assert rejection_reason(Result(" you", 0.9), 2.0) == "stock phrase on no speech"
    assert rejection_reason(Result(" Thank you.", 0.45), 1.0) == "stock phrase on no speech"
    assert rejection_reason(Result(" Thank you.", 0.02), 1.0) is None
    assert rejection_reason(Result(" Please hold.", 0.9), 1.0) == "no speech (short text)"
    assert rejection_reason(Result(" Please hold the line for the next agent.", 0.9, avg_logprob=-0.3), 3.0) is None


def test_a_phrase_looped_three_times_is_dropped():
    """tt-monkeys once gave this partial: an 8-word phrase three times over."""
    looped = " You're the one who's been here." * 3
    assert rejection_reason(Result(looped, 0.3, avg_logprob=-0.5), 4.0) == "repetitive (repeated words)"


def test_a_phrase_said_twice_is_dropped_only_where_the_model_doubts_speech():
    """base on tt-monkeys, cut at another point of the sound: no-speech 0.35, log-probability -1.0."""
    twice = " I'm gonna be mad at you. I'm gonna be mad at you."
    assert rejection_reason(Result(twice, 0.35, avg_logprob=-0.99), 5.0) == "repetitive (a phrase twice, on doubtful speech)"
    assert rejection_reason(Result(twice, 0.05, avg_logprob=-0.4), 5.0) is None  # a caller saying it again
    assert rejection_reason(Result(" Hello? Hello?", 0.35, avg_logprob=-0.6), 2.0) is None  # too short a phrase


def test_doubtful_text_on_doubtful_speech_is_dropped():
    """tt-monkeys with one CPU thread: a sentence twice, no-speech 0.52, log-probability -0.83."""
    doubtful = Result(" We're not in time. We're not in time.", 0.52, avg_logprob=-0.83)
    assert rejection_reason(doubtful, 6.0) == "no speech (doubtful text)"
    assert rejection_reason(Result(" P.", 0.34, avg_logprob=-0.54), 0.6) is None  # a real spelled letter


def test_the_multilingual_model_shows_no_words_on_monkeys_even_in_partials():
    """base wrote partials "Ah! Ah!", "One, two, three." on tt-monkeys (no-speech 0.34-0.48,
    log-probability -0.64 to -0.88): a partial is held to a stricter bar than a final."""
    import whisper

    engine = StreamingEngine(whisper.load_model("base"), EngineOptions())
    events = simulate(engine, SOUNDS["tt-monkeys"], 8000, StreamOptions(partials=True), stream_id="monkeys")
    assert [(e.kind, e.text) for e in events if e.text.strip()] == []


def test_a_doubtful_partial_is_not_shown_though_its_final_would_be_judged_alone():
    from whisper.policy import partial_rejection_reason

    monkeys = Result(" Ah! Ah!", 0.48, avg_logprob=-0.88)
    assert rejection_reason(monkeys, 1.9) is None
    assert partial_rejection_reason(monkeys, 1.9) == "no speech (doubtful partial)"
    assert partial_rejection_reason(Result(" Please hold.", 0.1, avg_logprob=-0.6), 1.0) is None
    assert partial_rejection_reason(Result(" you", 0.9), 1.0) == "stock phrase on no speech"
