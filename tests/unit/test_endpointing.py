"""Endpointing and voice activity as pure policies: frames in, utterance boundaries out."""
from __future__ import annotations

import numpy as np

from whisper.streaming.endpointing import EndpointOptions, Endpointer
from audiosocket_bridge.testing.voices import digit_recordings
from whisper.audio import StreamingResampler, int16_to_float
from whisper.streaming.vad import FRAME_SAMPLES, VoiceActivityDetector

SPEECH_DB, SILENCE_DB = -20.0, -90.0


def feed(endpointer: Endpointer, pattern: str):
    """'#' a speech frame, '.' a silent one (20 ms each)."""
    speech = np.array([ch == "#" for ch in pattern])
    levels = np.where(speech, SPEECH_DB, SILENCE_DB)
    return endpointer.push(speech, levels)


def test_trailing_silence_ends_an_utterance_with_pre_and_post_roll():
    endpointer = Endpointer(EndpointOptions(trailing_silence_s=0.2, pre_roll_s=0.1, post_roll_s=0.04))
    boundaries = feed(endpointer, "." * 20 + "#" * 30 + "." * 10)
    assert len(boundaries) == 1
    assert (boundaries[0].start_frame, boundaries[0].end_frame) == (15, 52)  # 5 frames pre-roll, 2 post-roll
    assert not boundaries[0].cut and not endpointer.in_utterance


def test_short_pauses_do_not_split_and_short_bursts_are_not_utterances():
    endpointer = Endpointer(EndpointOptions(trailing_silence_s=0.3, min_speech_s=0.2))
    assert feed(endpointer, "#" * 20 + "." * 10 + "#" * 20) == []  # a 200 ms pause inside speech
    assert len(feed(endpointer, "." * 20)) == 1
    assert feed(endpointer, "." * 10 + "#" * 6 + "." * 30) == []  # 120 ms of noise: dropped


def test_an_utterance_held_open_waits_the_longer_silence_once():
    endpointer = Endpointer(EndpointOptions(trailing_silence_s=0.2, held_trailing_silence_s=0.6))
    feed(endpointer, "#" * 20 + "." * 5)
    endpointer.hold_open()  # e.g. its decode at the pause was a digit
    assert feed(endpointer, "." * 20) == []  # 0.5 s of silence: held
    assert feed(endpointer, "#" * 20) == []  # the caller goes on: the same utterance
    assert len(feed(endpointer, "." * 30)) == 1  # still held: ends after 0.6 s
    feed(endpointer, "#" * 20)
    assert len(feed(endpointer, "." * 10)) == 1  # the next utterance is not held


def test_a_number_held_open_runs_past_the_length_limit_and_other_speech_does_not():
    # A caller reading a long number slowly: cut in two, each part lost digits decoded alone.
    options = EndpointOptions(max_utterance_s=2.0, number_max_utterance_s=4.0, cut_search_s=1.0, pre_roll_s=0.0)
    for number, cut_after_frames in ((False, 100), (True, 200)):
        endpointer = Endpointer(options)
        feed(endpointer, "#" * 20 + "." * 5)
        endpointer.hold_open(number=number)  # its decode at the pause was digits, or text the model doubts
        boundaries = feed(endpointer, ("#" * 15 + "." * 5) * 15)
        assert boundaries and boundaries[0].cut
        assert cut_after_frames - 20 <= boundaries[0].end_frame <= cut_after_frames
    feed(endpointer, "." * 100)
    feed(endpointer, "#" * 20)
    assert feed(endpointer, ("#" * 15 + "." * 5) * 7)[0].cut  # the next utterance is not held


def test_long_speech_is_cut_at_the_quietest_recent_frame():
    endpointer = Endpointer(EndpointOptions(max_utterance_s=2.0, cut_search_s=1.0, pre_roll_s=0.0))
    speech = np.ones(150, dtype=bool)
    levels = np.full(150, SPEECH_DB)
    levels[80] = -45.0  # a dip between words, inside the last second before the 2 s limit
    boundaries = endpointer.push(speech, levels)
    assert boundaries[0].cut and boundaries[0].end_frame == 80
    assert endpointer.in_utterance and endpointer.start_frame >= 80


def test_long_speech_is_cut_in_the_longest_recent_pause_not_at_a_quieter_frame_inside_words():
    # Sentences read without a pause long enough to end an utterance, as a long IVR prompt is: the
    # cut goes between sentences (the 0.2 s pause), not at the closure of a stop inside a word.
    endpointer = Endpointer(EndpointOptions(max_utterance_s=3.0, cut_search_s=2.0, pre_roll_s=0.0))
    pattern = "#" * 100 + "." * 10 + "#" * 35 + "." + "#" * 40
    speech = np.array([ch == "#" for ch in pattern])
    levels = np.where(speech, SPEECH_DB, -60.0)
    levels[145] = -95.0  # the one-frame closure: the quietest frame
    boundaries = endpointer.push(speech, levels)
    assert boundaries[0].cut and boundaries[0].end_frame == 105  # the middle of the pause
    assert endpointer.start_frame == 105


def test_flush_closes_the_open_utterance():
    endpointer = Endpointer(EndpointOptions())
    assert feed(endpointer, "#" * 40) == []
    boundary = endpointer.flush()
    assert boundary is not None and boundary.end_frame == 40


def test_expected_end_predicts_the_boundary_silence_will_give():
    endpointer = Endpointer(EndpointOptions())
    feed(endpointer, "#" * 40 + "." * 15)
    expected = endpointer.expected_end()
    boundaries = feed(endpointer, "." * 30)
    assert expected == (boundaries[0].start_frame, boundaries[0].end_frame)


def _frames(signal: np.ndarray) -> np.ndarray:
    n = len(signal) // FRAME_SAMPLES
    return signal[: n * FRAME_SAMPLES].reshape(n, FRAME_SAMPLES).astype(np.float32)


def test_vad_rejects_steady_tones_but_not_gliding_voiced_sound():
    t = np.arange(16000) / 16000
    dial_tone = 0.3 * (np.sin(2 * np.pi * 350 * t) + np.sin(2 * np.pi * 440 * t)) / 2
    is_speech, _ = VoiceActivityDetector().classify(_frames(dial_tone))
    assert is_speech.sum() <= 3  # only until the tone has held still for 80 ms
    pitch_hz = 120 + 60 * t  # a voice-like harmonic series whose pitch glides
    phase = 2 * np.pi * np.cumsum(pitch_hz) / 16000
    voiced = sum(np.sin(k * phase) / k for k in range(1, 15)) * 0.2
    is_speech, _ = VoiceActivityDetector().classify(_frames(voiced))
    assert is_speech.mean() > 0.9


def test_vad_hears_a_vowel_whose_fundamental_holds_its_energy_and_still_takes_hum_for_a_tone():
    """Asterisk's Russian "три": nearly all its energy at its fundamental (about 190 Hz) for 180 ms.
    Taken for a tone, it never opened an utterance and a number's first digit was lost."""
    resampler = StreamingResampler(8000)
    tri = resampler.process(int16_to_float(digit_recordings("ru")["3"]))
    is_speech, _ = VoiceActivityDetector().classify(_frames(tri))
    assert _longest_run(is_speech) >= 10  # enough to open an utterance and to count as one
    t = np.arange(3 * 16000) / 16000
    hum = 0.2 * (np.sin(2 * np.pi * 50 * t) + np.sin(2 * np.pi * 150 * t))
    is_speech, _ = VoiceActivityDetector().classify(_frames(hum))
    assert is_speech.sum() < 20  # a vowel's length at most, then a tone


def _longest_run(flags: np.ndarray) -> int:
    longest = run = 0
    for flag in flags.tolist():
        run = run + 1 if flag else 0
        longest = max(longest, run)
    return longest


def test_vad_needs_level_above_the_noise_floor():
    rng = np.random.default_rng(1)
    quiet = rng.normal(0, 0.001, 16000)  # about -60 dBFS
    assert not VoiceActivityDetector().classify(_frames(quiet))[0].any()
