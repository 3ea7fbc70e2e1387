"""The benchmarks' figure of what the machine does now: a decoding step's cost, beside every run."""
import math

import torch


def test_a_step_is_timed_for_each_batch_and_leaves_the_model_and_threads_as_they_were(tiny_model):
    from benchmarks._common import decoder_ms_per_step, machine_speed

    timings = decoder_ms_per_step(tiny_model, rows=(1, 3), steps=3)
    assert sorted(timings) == [1, 3] and all(math.isfinite(ms) and ms > 0 for ms in timings.values())
    with torch.inference_mode():  # the model still decodes a fresh cache from the first token
        features = tiny_model.embed_audio(torch.zeros(1, tiny_model.dims.n_mels, 3000), content_frames=300)
        assert tiny_model.decoder.new_cache(features).length == 0
    threads = torch.get_num_threads()
    line = machine_speed("tiny.en", threads=1)
    assert torch.get_num_threads() == threads
    assert "decoding step" in line and "for 8 rows" in line and "short encoder" in line, line
