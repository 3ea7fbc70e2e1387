"""The Whisper encoder-decoder transformer, with fused projections and an explicit KV cache."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

KV = Tuple[Tensor, Tensor]
# The short encoder path (Whisper.embed_audio with content_frames) encodes the audio plus this
# much silence, rounded up to whole seconds so that few input shapes occur.
SHORT_ENCODER_PAD_FRAMES = 200
SHORT_ENCODER_ROUND_FRAMES = 100


def short_encoder_frames(content_frames: int, window_frames: int) -> int:
    """How many mel frames the short path encodes for ``content_frames`` of audio (even, <= window)."""
    frames = content_frames + SHORT_ENCODER_PAD_FRAMES
    frames = -(-frames // SHORT_ENCODER_ROUND_FRAMES) * SHORT_ENCODER_ROUND_FRAMES
    return min(window_frames, frames + frames % 2)


@dataclass(frozen=True)
class ModelDimensions:
    n_mels: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_vocab: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int


class LayerNorm(nn.LayerNorm):
    """Normalises in float32 whatever the activations' precision (float16/bfloat16 would lose range)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(
            x.float(), self.normalized_shape, self.weight.float(), self.bias.float(), self.eps
        ).type(x.dtype)


class Linear(nn.Linear):
    def forward(self, x: Tensor) -> Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.weight.to(x.dtype), bias)


class Conv1d(nn.Conv1d):
    def _conv_forward(self, x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        return super()._conv_forward(x, weight.to(x.dtype), None if bias is None else bias.to(x.dtype))


def sinusoids(length: int, channels: int, max_timescale: float = 10000) -> Tensor:
    """The encoder's fixed sinusoidal position embedding."""
    log_timescale_increment = np.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = torch.exp(-log_timescale_increment * torch.arange(channels // 2))
    scaled_time = torch.arange(length)[:, None] * inv_timescales[None, :]
    return torch.cat([torch.sin(scaled_time), torch.cos(scaled_time)], dim=1)


def _split_heads(x: Tensor, n_head: int) -> Tensor:
    batch, length, state = x.shape
    return x.view(batch, length, n_head, state // n_head).transpose(1, 2)


def _merge_heads(x: Tensor) -> Tensor:
    batch, n_head, length, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, length, n_head * head_dim)


def attention(q: Tensor, k: Tensor, v: Tensor, causal: bool) -> Tensor:
    """Scaled dot-product attention over (batch, head, length, head_dim) tensors."""
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


def attention_weights(q: Tensor, k: Tensor) -> Tensor:
    """Softmax attention weights (batch, head, q_len, k_len), used for word-level alignment."""
    qk = q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5
    return qk.float().softmax(dim=-1)


class SelfAttention(nn.Module):
    """Self-attention with one fused q/k/v projection (the key part's bias is zero).

    Keys and values are cached split into heads, (batch, head, length, head_dim), so each decoding
    step appends to them without re-laying them out.
    """

    def __init__(self, n_state: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.qkv = Linear(n_state, 3 * n_state)
        self.out = Linear(n_state, n_state)

    def forward(self, x: Tensor, past: Optional[KV] = None, causal: bool = False) -> Tuple[Tensor, KV]:
        q, k, v = (_split_heads(t, self.n_head) for t in self.qkv(x).chunk(3, dim=-1))
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        new_len, total_len = q.shape[2], k.shape[2]
        if past is not None and new_len > 1:  # several new tokens after a cache: offset causal mask
            mask = torch.ones(new_len, total_len, dtype=torch.bool, device=x.device).tril(total_len - new_len)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            out = attention(q, k, v, causal and past is None and new_len > 1)
        return self.out(_merge_heads(out)), (k, v)


class CrossAttention(nn.Module):
    """Decoder-to-encoder attention; keys/values are projected once per audio and cached."""

    def __init__(self, n_state: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.query = Linear(n_state, n_state)
        self.kv = Linear(n_state, 2 * n_state)
        self.out = Linear(n_state, n_state)
        self.low_precision_kv: Optional[Tuple[Tensor, Tensor]] = None

    def project(self, audio_features: Tensor) -> KV:
        """Keys and values (batch, head, positions, head_dim), laid out once for every decoding step."""
        if self.low_precision_kv is not None:  # (weight, bias) in bfloat16: see Whisper.set_cross_kv_dtype
            weight, bias = self.low_precision_kv
            kv = F.linear(audio_features.to(weight.dtype), weight, bias).to(audio_features.dtype)
        else:
            kv = self.kv(audio_features)
        k, v = kv.chunk(2, dim=-1)
        return _split_heads(k, self.n_head).contiguous(), _split_heads(v, self.n_head).contiguous()

    def forward(self, x: Tensor, kv: KV, want_weights: bool = False,
                shared: Optional[KV] = None) -> Tuple[Tensor, Optional[Tensor]]:
        """`kv`: (batch, head, positions, head_dim) per row; `shared`: (head, more positions,
        head_dim) that follow them and are the same for every row (the silent tail, see
        TextDecoder.new_cache), read once for the whole batch."""
        q = _split_heads(self.query(x), self.n_head)
        # Plain matmuls: for the few queries of a decoding step they beat the fused kernel ~10x on CPU.
        if shared is None:
            weights = attention_weights(q, kv[0])
            out = weights.to(kv[1].dtype) @ kv[1]
        else:
            weights, out = _attention_with_shared(q, kv, shared)
        return self.out(_merge_heads(out)), weights if want_weights else None


def _attention_with_shared(q: Tensor, kv: KV, shared: KV) -> Tuple[Tensor, Tensor]:
    """Attention over each row's own keys followed by keys every row shares: the rows' queries
    are stacked per head, so the shared keys and values are multiplied once, not once per row."""
    batch, n_head, n_query, head_dim = q.shape
    scale = head_dim ** -0.5
    own = q @ kv[0].transpose(-1, -2)  # (batch, head, query, own positions)
    stacked = q.transpose(0, 1).reshape(n_head, batch * n_query, head_dim)
    common = (stacked @ shared[0].transpose(-1, -2)).view(n_head, batch, n_query, -1).transpose(0, 1)
    weights = (torch.cat([own, common], dim=-1) * scale).float().softmax(dim=-1)
    n_own = kv[0].shape[2]
    own_weights, common_weights = weights[..., :n_own].to(kv[1].dtype), weights[..., n_own:].to(kv[1].dtype)
    stacked_weights = common_weights.transpose(0, 1).reshape(n_head, batch * n_query, -1)
    common_out = (stacked_weights @ shared[1]).view(n_head, batch, n_query, head_dim).transpose(0, 1)
    return weights, own_weights @ kv[1] + common_out


class MLP(nn.Sequential):
    def __init__(self, n_state: int):
        super().__init__(Linear(n_state, 4 * n_state), nn.GELU(), Linear(4 * n_state, n_state))


class EncoderBlock(nn.Module):
    def __init__(self, n_state: int, n_head: int):
        super().__init__()
        self.attn_ln = LayerNorm(n_state)
        self.attn = SelfAttention(n_state, n_head)
        self.mlp_ln = LayerNorm(n_state)
        self.mlp = MLP(n_state)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.attn_ln(x))[0]
        return x + self.mlp(self.mlp_ln(x))


class DecoderBlock(nn.Module):
    def __init__(self, n_state: int, n_head: int):
        super().__init__()
        self.attn_ln = LayerNorm(n_state)
        self.attn = SelfAttention(n_state, n_head)
        self.cross_attn_ln = LayerNorm(n_state)
        self.cross_attn = CrossAttention(n_state, n_head)
        self.mlp_ln = LayerNorm(n_state)
        self.mlp = MLP(n_state)

    def forward(
        self, x: Tensor, cross_kv: KV, past: Optional[KV], want_weights: bool, shared_kv: Optional[KV] = None
    ) -> Tuple[Tensor, KV, Optional[Tensor]]:
        attn_out, self_kv = self.attn(self.attn_ln(x), past, causal=True)
        x = x + attn_out
        cross_out, weights = self.cross_attn(self.cross_attn_ln(x), cross_kv, want_weights, shared_kv)
        x = x + cross_out
        return x + self.mlp(self.mlp_ln(x)), self_kv, weights


class AudioEncoder(nn.Module):
    def __init__(self, n_mels: int, n_ctx: int, n_state: int, n_head: int, n_layer: int):
        super().__init__()
        self.conv1 = Conv1d(n_mels, n_state, kernel_size=3, padding=1)
        self.conv2 = Conv1d(n_state, n_state, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positional_embedding", sinusoids(n_ctx, n_state))
        self.blocks = nn.ModuleList(EncoderBlock(n_state, n_head) for _ in range(n_layer))
        self.ln_post = LayerNorm(n_state)

    def forward(self, mel: Tensor) -> Tensor:
        """mel: (batch, n_mels, n_frames) with n_frames <= 3000; shorter inputs give shorter outputs."""
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).permute(0, 2, 1)
        if x.shape[1] > self.positional_embedding.shape[0]:
            raise ValueError(f"audio too long for the encoder: {x.shape[1]} positions")
        x = (x + self.positional_embedding[: x.shape[1]]).to(x.dtype)
        for block in self.blocks:
            x = block(x)
        return self.ln_post(x)


EXACT_LOGITS = 16  # with low-precision logits: how many of the highest are computed again in float32
_INT8_BLOCK_ROWS = 16


class Int8Rows:
    """A (rows, cols) matrix in int8 with one scale per row, multiplied as int8 x int8 -> int32
    with each input row quantized on the fly (its own scale): for tiny.en's vocabulary logits on
    one AMD EPYC core, 0.4 ms a step for one row against 2.9 ms in bfloat16 and 5.7 in float32."""

    def __init__(self, weight: Tensor):
        self.scale = weight.float().abs().amax(dim=1).clamp(min=1e-12) / 127
        rows = torch.round(weight.float() / self.scale[:, None]).to(torch.int8).contiguous()
        self.transposed = rows.T  # a view of the row-major matrix: what torch._int_mm reads fastest

    def linear(self, x: Tensor) -> Tensor:
        """About x @ weight.T, in float32 (errors up to about 1 at tiny.en's logit sizes)."""
        flat = x.reshape(-1, x.shape[-1]).float()
        x_scale = flat.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127
        quantized = torch.round(flat / x_scale).to(torch.int8)
        # In blocks of rows: torch._int_mm's CPU kernel slows down past 16 rows (AMD EPYC, 32 rows:
        # 12.5 ms at once, 8.6 ms in two blocks; bfloat16 10.9 ms).
        product = torch.cat([torch._int_mm(block, self.transposed) for block in quantized.split(_INT8_BLOCK_ROWS)])
        return (product.float() * x_scale * self.scale).view(*x.shape[:-1], -1)


@dataclass(frozen=True)
class SilentTail:
    features: Tensor  # (1, 1500, n_state): encoder states of 30 s of silence
    cross_kv: List[KV]  # their cross-attention keys and values, per decoder layer


def silent_from(audio_features: Tensor, silent: Tensor) -> int:
    """The first position from which every row's states are the silent window's own (exactly:
    embed_audio copies them); the length when some row has none."""
    if audio_features.shape[1:] != silent.shape[1:]:
        return audio_features.shape[1]
    same = (audio_features == silent).all(dim=-1)  # (batch, positions)
    trailing = same.flip(1).int().cumprod(dim=1).sum(dim=1)  # per row: run of equal positions at the end
    return audio_features.shape[1] - int(trailing.min())


class DecoderCache:
    """Per-layer cross-attention K/V (fixed per audio) and self-attention K/V (grows per token).

    `shared_kv`, when set, holds per layer the cross-attention K/V of positions after each row's
    own that are the same for every row, (head, positions, head_dim): see TextDecoder.new_cache.
    """

    def __init__(self, cross_kv: List[KV], shared_kv: Optional[List[KV]] = None):
        self.cross_kv = cross_kv
        self.shared_kv = shared_kv
        self.self_kv: List[Optional[KV]] = [None] * len(cross_kv)

    @property
    def length(self) -> int:
        first = self.self_kv[0]
        return 0 if first is None else first[0].shape[2]

    def reorder(self, rows: Tensor) -> None:
        """Select batch rows of the self-attention cache (beam search reorders within an audio's group,
        so the cross-attention rows, identical within a group, stay as they are)."""
        self.self_kv = [None if kv is None else (kv[0][rows], kv[1][rows]) for kv in self.self_kv]

    def select_audio(self, rows: Tensor) -> None:
        """Keep only ``rows`` of everything: used when finished audios leave a batch."""
        self.reorder(rows)
        self.cross_kv = [(k[rows], v[rows]) for k, v in self.cross_kv]


class TextDecoder(nn.Module):
    def __init__(self, n_vocab: int, n_ctx: int, n_state: int, n_head: int, n_layer: int):
        super().__init__()
        self.token_embedding = nn.Embedding(n_vocab, n_state)
        self.positional_embedding = nn.Parameter(torch.empty(n_ctx, n_state))
        self.blocks = nn.ModuleList(DecoderBlock(n_state, n_head) for _ in range(n_layer))
        self.ln = LayerNorm(n_state)
        # the token embedding in bfloat16 (a tensor) or int8 (Int8Rows), see Whisper.set_logits_dtype
        self.low_precision_logits: Optional[Union[Tensor, Int8Rows]] = None
        # (dtype, device) -> the silent window's encoder states and their cross-attention K/V per
        # layer, or None; set by Whisper when it pads short encodings with that window
        self.silent_tail: Optional[Callable[[torch.dtype, torch.device], Optional[SilentTail]]] = None

    def new_cache(self, audio_features: Tensor) -> DecoderCache:
        """Cross-attention K/V of every layer. Positions that are the silent window's own (the tail
        Whisper.embed_audio pads a short encoding with) take its K/V, projected once per model and
        shared by the rows (DecoderCache.shared_kv): for a 3 s utterance that is 5/6 of the
        projection work, which costs about as much as the short encoder itself, and 5/6 of the
        keys and values each decoding step reads per row."""
        tail = self.silent_tail(audio_features.dtype, audio_features.device) if self.silent_tail else None
        start = audio_features.shape[1] if tail is None else silent_from(audio_features, tail.features)
        if start >= audio_features.shape[1]:
            return DecoderCache([block.cross_attn.project(audio_features) for block in self.blocks])
        start = max(1, start)
        head = audio_features[:, :start]
        cross_kv = [block.cross_attn.project(head) for block in self.blocks]
        shared_kv = [(k[0, :, start:], v[0, :, start:]) for k, v in tail.cross_kv]
        return DecoderCache(cross_kv, shared_kv)

    def forward(
        self, tokens: Tensor, cache: DecoderCache, want_weights: bool = False, exact_tokens: Optional[Tensor] = None
    ) -> Tuple[Tensor, List[Optional[Tensor]]]:
        """Logits for ``tokens`` (batch, new_len) following what ``cache`` holds; updates the cache.
        With low-precision logits, the highest ones and those of ``exact_tokens`` (token ids a
        decision will read: no-speech, languages, a grammar's tokens) are in full precision."""
        offset = cache.length
        x = self.token_embedding(tokens) + self.positional_embedding[offset : offset + tokens.shape[-1]]
        x = x.to(cache.cross_kv[0][0].dtype)
        weights: List[Optional[Tensor]] = []
        shared = cache.shared_kv or [None] * len(self.blocks)
        for i, block in enumerate(self.blocks):
            x, cache.self_kv[i], w = block(x, cache.cross_kv[i], cache.self_kv[i], want_weights, shared[i])
            weights.append(w)
        x = self.ln(x)
        if self.low_precision_logits is not None:
            return self._low_precision_logits(x, exact_tokens), weights
        logits = (x @ self.token_embedding.weight.to(x.dtype).T).float()
        return logits, weights

    def _low_precision_logits(self, x: Tensor, exact_tokens: Optional[Tensor] = None) -> Tensor:
        """Every logit in low precision, then the highest ones (and ``exact_tokens``) again in full
        precision: the rounding (bfloat16 about 0.1, int8 up to about 1) must not decide between
        close candidates."""
        weight = self.low_precision_logits
        if isinstance(weight, Int8Rows):
            logits = weight.linear(x)
        else:
            logits = F.linear(x.to(weight.dtype), weight).float()
        if exact_tokens is not None and len(exact_tokens):
            chosen = self.token_embedding.weight.index_select(0, exact_tokens).to(x.dtype)
            logits[..., exact_tokens] = (x @ chosen.T).float()
        top = logits.topk(EXACT_LOGITS, dim=-1).indices  # (batch, tokens, k)
        rows = self.token_embedding.weight[top].to(x.dtype)  # (batch, tokens, k, state)
        exact = (rows @ x.unsqueeze(-1)).squeeze(-1).float()
        return logits.scatter_(-1, top, exact)


class Whisper(nn.Module):
    def __init__(self, dims: ModelDimensions):
        super().__init__()
        self.dims = dims
        self.encoder = AudioEncoder(
            dims.n_mels, dims.n_audio_ctx, dims.n_audio_state, dims.n_audio_head, dims.n_audio_layer
        )
        self.decoder = TextDecoder(
            dims.n_vocab, dims.n_text_ctx, dims.n_text_state, dims.n_text_head, dims.n_text_layer
        )
        # By default use the last half of the decoder layers' heads for time alignment.
        heads = torch.zeros(dims.n_text_layer, dims.n_text_head, dtype=torch.bool)
        heads[dims.n_text_layer // 2 :] = True
        self.register_buffer("alignment_heads", heads, persistent=False)
        self.name = "custom"
        # Encode only the audio (plus padding) of a window whose content length is known, and take
        # the rest of the 1500 positions from an all-silent window encoded once: calls speak in
        # 1-5 s utterances, so ~90 % of a 30 s window's encoder work is padding. On by default where
        # it measured as good: English-only models (tiny.en on 120 prompts: WER 3.4 % vs 7.1 %);
        # base (multilingual) lost 1-2 points on Debian's it/fr/ru prompts and, even with the
        # language given, doubts French digits are speech (test_short_encoder), so it stays off there.
        self.short_encoder = not self.is_multilingual
        self._silent_features: Dict[tuple, Tensor] = {}
        self._silent_tails: Dict[tuple, SilentTail] = {}
        self.decoder.silent_tail = self._silent_tail

    def set_alignment_heads(self, layer_head_pairs) -> None:
        heads = torch.zeros(self.dims.n_text_layer, self.dims.n_text_head, dtype=torch.bool)
        for layer, head in layer_head_pairs:
            heads[layer, head] = True
        self.alignment_heads = heads.to(self.alignment_heads.device)

    def set_cross_kv_dtype(self, dtype: Optional[torch.dtype]) -> None:
        """Project encoder states to cross-attention keys/values in ``dtype`` (None: the model's own).

        These projections (every audio position, every decoder layer) cost as much as a fifth of
        the encoder in float32; the keys and values are returned in the model's precision.
        """
        for block in self.decoder.blocks:
            kv = block.cross_attn.kv
            block.cross_attn.low_precision_kv = None if dtype is None else (kv.weight.to(dtype), kv.bias.to(dtype))

    def set_logits_dtype(self, dtype: Optional[torch.dtype]) -> None:
        """Compute the vocabulary logits in ``dtype`` (None: the model's own precision).

        Each decoding step multiplies by the whole token embedding (51864 x n_state): 80 MB in
        float32 for tiny, read from memory at every step, about 40 % of a step's time on a CPU.
        In bfloat16 it takes a quarter of the time there (AMD EPYC, batch of 8: 1.9 vs 8.7 ms);
        ``torch.int8`` (``Int8Rows``, CPU only) takes less again, most of all for the one or two
        rows a streaming batch often has.
        """
        weight = self.decoder.token_embedding.weight
        if dtype is None:
            self.decoder.low_precision_logits = None
        elif dtype == torch.int8:
            self.decoder.low_precision_logits = Int8Rows(weight)
        else:
            self.decoder.low_precision_logits = weight.to(dtype).contiguous()

    def embed_audio(self, mel: Tensor, content_frames: Union[None, int, Sequence[int]] = None) -> Tensor:
        """Encoder states (batch, 1500, n_state) in the decoder's precision (the encoder may run in
        bfloat16, see load_model).

        ``content_frames``: how many leading frames of each 3000-frame window hold audio (the rest
        is silence padding). With ``short_encoder`` on, only those frames plus ~2 s are encoded;
        the decoder still sees 1500 positions, the tail taken from an encoded all-silent window
        (feeding it only the short part makes tiny.en loop).
        """
        if content_frames is not None and not isinstance(content_frames, int):
            content_frames = max(content_frames)
        window_frames = 2 * self.dims.n_audio_ctx
        frames = min(mel.shape[-1], window_frames)
        if mel.shape[-1] == window_frames:
            frames = self.encoded_frames(content_frames)
        features = self._encode(mel[..., :frames])
        if frames == mel.shape[-1]:
            return features
        tail = self.silent_features()[:, frames // 2 :]
        return torch.cat([features, tail.expand(mel.shape[0], -1, -1)], dim=1)

    def encoded_frames(self, content_frames: Optional[int] = None) -> int:
        """How many mel frames embed_audio encodes of a whole window with ``content_frames`` of audio."""
        window_frames = 2 * self.dims.n_audio_ctx
        if self.short_encoder and content_frames is not None:
            return short_encoder_frames(content_frames, window_frames)
        return window_frames

    def _encode(self, mel: Tensor) -> Tensor:
        encoder_dtype = self.encoder.conv1.weight.dtype
        return self.encoder(mel.to(encoder_dtype)).to(self.dtype)

    def silent_features(self) -> Tensor:
        """Encoder states (1, 1500, n_state) of 30 s of silence, computed once per device/precision."""
        key = (self.device, self.dtype, self.encoder.conv1.weight.dtype)
        if key not in self._silent_features:
            from .audio import N_SAMPLES, log_mel_spectrogram

            mel = log_mel_spectrogram(torch.zeros(N_SAMPLES), self.dims.n_mels).to(self.device)
            with torch.inference_mode():
                self._silent_features[key] = self._encode(mel.unsqueeze(0))
        return self._silent_features[key]

    def _silent_tail(self, dtype: torch.dtype, device: torch.device) -> Optional[SilentTail]:
        """For TextDecoder.new_cache, while short encodings are padded with the silent window."""
        if not self.short_encoder or dtype != self.dtype or device != self.device:
            return None
        low_precision = self.decoder.blocks[0].cross_attn.low_precision_kv
        key = (self.device, self.dtype, self.encoder.conv1.weight.dtype,
               None if low_precision is None else low_precision[0].dtype)
        if key not in self._silent_tails:
            features = self.silent_features()
            with torch.inference_mode():
                cross_kv = [block.cross_attn.project(features) for block in self.decoder.blocks]
            self._silent_tails[key] = SilentTail(features, cross_kv)
        return self._silent_tails[key]

    def logits(self, tokens: Tensor, audio_features: Tensor) -> Tensor:
        return self.decoder(tokens, self.decoder.new_cache(audio_features))[0]

    def forward(self, mel: Tensor, tokens: Tensor) -> Tensor:
        return self.logits(tokens, self.embed_audio(mel))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return self.decoder.token_embedding.weight.dtype

    @property
    def is_multilingual(self) -> bool:
        return self.dims.n_vocab >= 51865

    @property
    def num_languages(self) -> int:
        return self.dims.n_vocab - 51765 - int(self.is_multilingual)

    def detect_language(self, mel: Tensor, tokenizer=None, candidates=()):
        from .decoding import detect_language

        return detect_language(self, mel, tokenizer, candidates)

    def decode(self, mel: Tensor, options=None, **kwargs):
        from .decoding import decode

        return decode(self, mel, options, **kwargs)

    def transcribe(self, audio, **kwargs):
        from .transcribe import transcribe

        return transcribe(self, audio, **kwargs)
