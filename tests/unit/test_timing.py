"""Word alignment pieces: DTW against a plain dynamic programme, the median filter, punctuation merging."""
import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from whisper.timing import (WordTiming, dtw, dtw_cost, dtw_cost_torch, dtw_cpu, dtw_cuda, median_filter,
                            merge_punctuations)


def plain_dtw_cost(x: np.ndarray) -> np.ndarray:
    rows, cols = x.shape
    cost = np.full((rows + 1, cols + 1), np.inf)
    cost[0, 0] = 0
    for i in range(1, rows + 1):
        for j in range(1, cols + 1):
            cost[i, j] = x[i - 1, j - 1] + min(cost[i - 1, j - 1], cost[i - 1, j], cost[i, j - 1])
    return cost


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 8), st.integers(1, 30), st.integers(0, 2**32 - 1))
def test_dtw_cost_matches_the_plain_recurrence(rows, cols, seed):
    x = np.random.default_rng(seed).normal(size=(rows, cols))
    np.testing.assert_allclose(dtw_cost(x), plain_dtw_cost(x), rtol=1e-9, atol=1e-9)


def test_dtw_path_is_monotonic_and_follows_the_cheap_diagonal():
    x = np.ones((4, 12))
    for row, (a, b) in enumerate([(0, 3), (3, 6), (6, 9), (9, 12)]):
        x[row, a:b] = -1.0
    rows, cols = dtw(x)
    assert rows[0] == 0 and cols[0] == 0 and rows[-1] == 3 and cols[-1] == 11
    assert (np.diff(rows) >= 0).all() and (np.diff(cols) >= 0).all()
    first_col = [cols[rows == r].min() for r in range(4)]
    assert first_col == [0, 3, 6, 9]


def test_median_filter_matches_sorting():
    x = np.random.default_rng(1).normal(size=(2, 3, 20))
    filtered = median_filter(x, 7)
    padded = np.pad(x, [(0, 0), (0, 0), (3, 3)], mode="reflect")
    expected = np.stack([np.sort(padded[..., i : i + 7], axis=-1)[..., 3] for i in range(20)], axis=-1)
    np.testing.assert_allclose(filtered, expected)


def timing(word: str, start: float) -> WordTiming:
    return WordTiming(word, [len(word)], start, start + 0.5, 0.9)


def test_punctuation_joins_its_word():
    words = [timing(' "', 0), timing(" Hello", 1), timing(",", 2), timing(" world", 3), timing(".", 4),
             timing('"', 5)]  # fmt: skip
    merged = merge_punctuations(words, "\"'“¿([{-", "\"'.。,，!！?？:：”)]}、")
    assert [w.word for w in merged] == [' " Hello,', ' world."']
    assert [w.start for w in merged] == [1, 3]
    assert merged[0].tokens == [2, 6, 1]


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 12), st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_dtw_on_a_device_finds_the_same_path(rows, cols, seed):
    """``dtw_cuda`` (openai-whisper's name; here torch on any device) against the numpy closed form."""
    x = np.random.default_rng(seed).normal(size=(rows, cols)).astype(np.float32)
    np.testing.assert_allclose(dtw_cost_torch(torch.from_numpy(x)).numpy(), dtw_cost(x.astype(np.float64)), rtol=1e-9, atol=1e-9)
    assert (dtw_cuda(torch.from_numpy(x)) == dtw_cpu(x)).all()


def test_median_filter_keeps_a_tensor_a_tensor():
    x = torch.from_numpy(np.random.default_rng(2).normal(size=(3, 4, 50)).astype(np.float32))
    filtered = median_filter(x, 5)
    assert torch.is_tensor(filtered) and filtered.shape == x.shape
    np.testing.assert_allclose(filtered.numpy(), median_filter(x.numpy(), 5), rtol=1e-6)
