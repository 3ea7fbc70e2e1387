"""The benchmarks' figure of what the machine does now: a decoding step's cost, beside every run."""
import math

import torch


def test_a_step_is_timed_for_each_batch_and_the_threads_are_restored(tiny_model):
    from benchmarks._common import decoder_ms_per_step, machine_speed

    timings = decoder_ms_per_step(tiny_model, rows=(1, 3), steps=3)
    assert sorted(timings) == [1, 3] and all(math.isfinite(ms) and ms > 0 for ms in timings.values())
    threads = torch.get_num_threads()
    line = machine_speed("tiny.en", threads=1)
    assert torch.get_num_threads() == threads
    assert "decoding step" in line and "for 8 rows" in line and "short encoder" in line, line
