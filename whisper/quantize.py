"""Dynamic int8 quantization of the linear layers, for faster CPU inference."""
from __future__ import annotations

import warnings

import torch
from torch import nn

from .model import Linear, Whisper


def _as_plain_linear(layer: Linear) -> nn.Linear:
    """torch's quantizer only converts exact nn.Linear modules; ours only adds dtype casts."""
    plain = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    plain.load_state_dict(layer.state_dict())
    return plain


def _replace_linears(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, Linear) and child.weight.dtype == torch.float32:
            setattr(module, name, _as_plain_linear(child))
        else:
            _replace_linears(child)


def quantize_dynamic_int8(model: Whisper) -> Whisper:
    """int8 weights and per-batch int8 activations for every float32 linear layer.

    CPU only. Linear layers in another precision (a bfloat16 encoder, see load_model), the
    convolutions, layer norms, embeddings and the output projection (the token embedding, shared
    with the input) stay as they are.
    """
    if model.device.type != "cpu":
        raise ValueError("dynamic int8 quantization runs on the CPU only")
    _replace_linears(model)
    with warnings.catch_warnings():
        # torch.ao.quantization and its quantized tensors are deprecated in favour of torchao (not installed)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*", category=UserWarning)
        quantized = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8, inplace=True)
    return quantized.eval()
