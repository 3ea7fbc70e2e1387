"""Endpointing in line noise: real speech (Asterisk's prompts, espeak-ng's sentences) with pink noise
at 15, 10 and 5 dB SNR through G.711, as benchmarks.callmix plays it; the VAD and endpointer alone."""
import shutil
from dataclasses import replace
from typing import List, Optional, Tuple

import numpy as np
import pytest

from whisper.audio import int16_to_float, resample
from whisper.streaming.endpointing import Endpointer, EndpointOptions
from whisper.streaming.vad import FRAME_SAMPLES, VadOptions, VoiceActivityDetector

pytestmark = pytest.mark.skipif(shutil.which("sox") is None or shutil.which("espeak-ng") is None,
                                reason="needs sox and espeak-ng")


def endpoints(call, vad_options: VadOptions) -> Tuple[List[Optional[float]], int]:
    """Per utterance of ``call``: seconds from its speech's end to the endpointer closing the last
    utterance that overlaps it (None: none did); and how many utterances lay outside all speech."""
    audio = np.asarray(resample(int16_to_float(call.pcm), 8000), dtype=np.float32)
    frames = audio[: len(audio) // FRAME_SAMPLES * FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES)
    vad, endpointer = VoiceActivityDetector(vad_options), Endpointer(EndpointOptions())
    closed = []  # (boundary, frame at which it was reported)
    for at in range(0, len(frames), 5):  # 100 ms at a time, as a stream drains
        is_speech, level = vad.classify(frames[at : at + 5])
        closed += [(b, endpointer.frame) for b in endpointer.push(is_speech, level)]
    spans = list(zip(call.starts, call.ends))
    delays = []
    for start, end in spans:
        mine = [frame for b, frame in closed if b.start_frame <= end + 1 and b.end_frame >= start]
        delays.append((max(mine) - end - 1) * 0.02 if mine else None)
    outside = sum(1 for b, _ in closed if not any(b.start_frame <= e + 1 and b.end_frame >= s for s, e in spans))
    return delays, outside


@pytest.mark.parametrize("snr_db", [15.0, 10.0, 5.0])
def test_the_end_of_speech_is_found_in_line_noise(snr_db):
    from audiosocket_bridge.testing.callmix import plan_calls

    calls = plan_calls(2, 6, snr_db, seed=3, ulaw=True)
    delays, outside = [], 0
    for call in calls:
        found, stray = endpoints(call, VadOptions())
        delays += found
        outside += stray
    assert None not in delays, delays  # every utterance was heard
    assert max(delays) <= 1.0, delays  # its end found within the trailing silence (0.5 s) and a little
    assert outside == 0  # the noise between turns opened no utterance
    # A floor that only climbs 1 dB/s, compared on every frame: in noise it missed these ends by seconds.
    slow = replace(VadOptions(), floor_window_s=1000.0, smooth_frames=1, snr_db=12.0)
    old = [d for call in calls for d in endpoints(call, slow)[0]]
    assert None in old or max(old) > 3.0, old


def test_the_noise_floor_reaches_a_steady_noise_within_its_window():
    from audiosocket_bridge.testing.callmix import pink_noise

    noise = 0.05 * pink_noise(16000 * 4, np.random.default_rng(1)).astype(np.float32)  # about -26 dBFS
    vad = VoiceActivityDetector(VadOptions(floor_window_s=2.0))
    is_speech, level = vad.classify(noise.reshape(-1, FRAME_SAMPLES))
    assert vad.noise_floor_dbfs > float(np.median(level)) - 6.0, (vad.noise_floor_dbfs, np.median(level))
    assert not is_speech[-50:].any()  # after the window, the noise is not speech
