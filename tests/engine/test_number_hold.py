"""Holding an utterance open for a number: for one that is a number, not for prose that mentions one."""
from dataclasses import replace
from typing import Optional

import numpy as np
import torch

from audiosocket_bridge.testing.prompts import prompt
from whisper.decoding import DecodingResult
from whisper.streaming.endpointing import EndpointOptions, Endpointer
from whisper.policy import GuardOptions, releases_hold, wants_more_audio
from whisper.text_metrics import compression_ratio

SPEECH_DB = -20.0


def result(text: str, avg_logprob: float = -0.2, no_speech_prob: float = 0.05) -> DecodingResult:
    return DecodingResult(audio_features=torch.zeros(1), language="en", text=text, avg_logprob=avg_logprob,
                          no_speech_prob=no_speech_prob, compression_ratio=compression_ratio(text))


def feed(endpointer: Endpointer, pattern: str):
    speech = np.array([c == "#" for c in pattern])
    return endpointer.push(speech, np.where(speech, SPEECH_DB, -60.0))


def test_prose_the_model_is_sure_of_releases_a_hold_and_numbers_or_doubt_do_not():
    assert releases_hold(result("4 or 6 to decrease or increase the conference volume."))
    assert releases_hold(result("My account number is 4 7 1 1."))
    for text in ("4, 7.", "4 7 1 1 2", "four or six", "Press 4 now."):  # a number, or too few words besides
        assert not releases_hold(result(text)), text
    assert not releases_hold(result("to decrease or increase the volume", avg_logprob=-1.2))  # doubted
    assert not releases_hold(result("four or six to decrease the volume"), GuardOptions(release_prose_words=10))
    assert wants_more_audio(result("4."))  # what held it


def test_a_released_utterance_ends_after_the_ordinary_silence_and_is_cut_at_the_ordinary_limit():
    options = EndpointOptions(trailing_silence_s=0.2, held_trailing_silence_s=0.6, max_utterance_s=2.0,
                              number_max_utterance_s=4.0, cut_search_s=1.0, pre_roll_s=0.0)
    endpointer = Endpointer(options)
    feed(endpointer, "#" * 20 + "." * 5)
    endpointer.hold_open(number=True)
    assert feed(endpointer, "." * 15 + "#" * 20) == []  # 0.4 s of silence: held
    endpointer.release()
    assert not endpointer.held
    boundaries = feed(endpointer, ("#" * 15 + "." * 5) * 5)
    assert boundaries and boundaries[0].cut and boundaries[0].end_frame <= 100  # not run on to 4 s
    assert len(feed(endpointer, "." * 11)) == 1  # 0.2 s of silence ends it


def _final_delay_s(engine, pcm: bytes, speech_end_s: float) -> Optional[float]:
    """Audio time from the end of speech to the final's emission, feeding 20 ms frames and running
    one scheduler step per 100 ms of audio (as ``sim.simulate``: an infinitely fast model)."""
    from whisper.streaming.sim import frames_of
    from whisper.streaming.types import StreamOptions

    events = []
    stream = engine.open_stream("caller", StreamOptions(partials=True), events.append)
    for i, frame in enumerate(frames_of(pcm, 8000)):
        stream.push(frame, 8000)
        if (i + 1) % 5 == 0:
            engine.step()
            if any(e.is_final and e.text.strip() and e.end_s > speech_end_s - 0.5 for e in events):
                stream.close()
                while not stream.close_future.done():
                    engine.step()
                return (i + 1) * 0.02 - speech_end_s
    return None


def test_prose_after_a_held_digit_is_final_after_the_ordinary_silence(tiny_model):
    """Asterisk's "4", a 0.35 s pause, then a sentence (as the rest of a menu prompt comes after a
    commit): held at "4", the utterance is let go once its decode is the sentence, so its final is
    out about 0.5 s after the words end, not after the 1.2 s a number gets."""
    from audiosocket_bridge.testing.callmix import MARGIN_S, trimmed
    from whisper.streaming import EngineOptions, StreamingEngine

    margin = 2 * int(MARGIN_S * 8000)  # bytes of silence trimmed() leaves either side
    four = trimmed(prompt("digits/4").pcm)[:-margin]
    sentence = trimmed(prompt("conf-getpin").pcm)[margin:]  # "Please enter the conference pin number."
    pcm = four + bytes(2 * int(0.35 * 8000)) + sentence + bytes(2 * 8000 * 2)
    speech_end_s = (len(pcm) - 2 * 8000 * 2 - margin) / 2 / 8000
    delays = {}
    for words in (GuardOptions().release_prose_words, 1000):  # 1000: never released (as before)
        options = EngineOptions(guard=replace(GuardOptions(), release_prose_words=words))
        delays[words] = _final_delay_s(StreamingEngine(tiny_model, options), pcm, speech_end_s)
    released, held = delays[GuardOptions().release_prose_words], delays[1000]
    assert released is not None and held is not None, delays
    assert released <= 0.8 and held >= 1.1, delays
