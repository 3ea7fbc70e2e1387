"""Dynamic int8 quantization keeps transcripts right on real prompts."""
import pytest
import torch

import whisper
from audiosocket_bridge.testing.prompts import prompt
from whisper.evaluation import normalize_english, word_error_rate
from whisper.transcribe import transcribe_batch

NAMES = ["agent-pass", "conf-getpin", "vm-review", "vm-nomore"]


@pytest.fixture(scope="module")
def int8_model():
    return whisper.load_model("tiny.en", device="cpu", quantize=True)


def test_decoder_linears_are_int8(int8_model):
    quantized = torch.ao.nn.quantized.dynamic.Linear
    assert isinstance(int8_model.decoder.blocks[0].attn.qkv, quantized)
    assert isinstance(int8_model.decoder.blocks[-1].mlp[2], quantized)


def test_int8_transcripts_match_references(int8_model, tiny_model):
    paths = [prompt(n).path for n in NAMES]
    references = [normalize_english(prompt(n).text) for n in NAMES]
    int8 = [normalize_english(r["text"]) for r in transcribe_batch(int8_model, paths)]
    float32 = [normalize_english(r["text"]) for r in transcribe_batch(tiny_model, paths)]
    assert word_error_rate(references, int8) <= word_error_rate(references, float32) + 0.05
