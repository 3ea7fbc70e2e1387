"""Decoding one 30 s (or shorter) window: options, logit filters, greedy and beam search, language ID."""
from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Categorical

from .audio import CHUNK_LENGTH_S, N_FRAMES
from .loops import LoopFilter, LoopRule, cut_loops, speech_s
from .text_metrics import compression_ratio
from .tokenizer import Tokenizer, get_tokenizer

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from .grammar import Grammar
    from .vocabulary import Vocabulary
    from .model import DecoderCache, Whisper


@dataclass(frozen=True)
class DecodingOptions:
    task: str = "transcribe"  # or "translate"
    language: Optional[str] = None  # None: detect (multilingual models)
    language_candidates: Tuple[str, ...] = ()  # when detecting: only among these ("es", "en")
    temperature: float = 0.0
    sample_len: Optional[int] = None  # most tokens to sample
    best_of: Optional[int] = None  # independent samples when temperature > 0
    beam_size: Optional[int] = None  # beams when temperature == 0
    patience: Optional[float] = None  # beam search: finished candidates to collect, as a multiple of beam_size
    length_penalty: Optional[float] = None  # None: rank by sum logprob / length
    prompt: Optional[Union[str, List[int]]] = None  # previous text, for context
    prefix: Optional[Union[str, List[int]]] = None  # forced start of the current window's text
    suppress_tokens: Optional[Union[str, Iterable[int]]] = "-1"  # "-1": the non-speech symbol set
    suppress_blank: bool = True
    without_timestamps: bool = False
    max_initial_timestamp: Optional[float] = 1.0
    fp16: bool = True  # ignored on the CPU, where we always compute in float32
    grammar: Optional["Grammar"] = None  # whisper.grammar: only answers it allows (no timestamps)
    vocabulary: Optional["Vocabulary"] = None  # whisper.vocabulary: phrases boosted while decoded
    # Sampling (temperature > 0) draws from a generator seeded with this, so the same audio and
    # options give the same text whatever ran before in the process; None: torch's global generator.
    seed: Optional[int] = 0
    # Loops ("9, 9, 9, ..." until the token budget runs out) are stopped as they grow and cut to
    # their first copy (whisper.loops); None: decoded as the model likes.
    loop_rule: Optional[LoopRule] = LoopRule()


@dataclass(frozen=True)
class DecodingResult:
    audio_features: Tensor
    language: str
    language_probs: Optional[Dict[str, float]] = None
    tokens: List[int] = field(default_factory=list)
    text: str = ""
    avg_logprob: float = np.nan
    no_speech_prob: float = np.nan
    temperature: float = np.nan
    compression_ratio: float = np.nan
    # With DecodingTask(collect_alignment=True), greedy only: per decoder layer the cross-attention
    # weights (1, heads, rows, positions) of every decoded position, and each text token's probability.
    cross_attention: Optional[List[Tensor]] = None
    token_probs: Optional[List[float]] = None
    loops: Tuple[str, ...] = ()  # the text of each loop cut out of the tokens (whisper.loops)


class LogitFilter:
    """Edits next-token logits in place (e.g. to forbid tokens) given the tokens so far."""

    def apply(self, logits: Tensor, tokens: Tensor) -> None:
        raise NotImplementedError

    def candidates(self) -> Optional[Sequence[int]]:
        """The only tokens this filter ever leaves allowed (a grammar's), or None: any."""
        return None


class SuppressBlank(LogitFilter):
    """At the first sampled position, forbid a bare space and end-of-text."""

    def __init__(self, tokenizer: Tokenizer, sample_begin: int):
        self.blank = tokenizer.encode(" ") + [tokenizer.eot]
        self.sample_begin = sample_begin

    def apply(self, logits: Tensor, tokens: Tensor) -> None:
        if tokens.shape[1] == self.sample_begin:
            logits[:, self.blank] = -np.inf


class SuppressTokens(LogitFilter):
    def __init__(self, suppress_tokens: Sequence[int]):
        self.suppress_tokens = list(suppress_tokens)

    def apply(self, logits: Tensor, tokens: Tensor) -> None:
        logits[:, self.suppress_tokens] = -np.inf


class ApplyTimestampRules(LogitFilter):
    """Timestamps come in non-decreasing pairs around each text segment and stay inside the audio."""

    def __init__(self, tokenizer: Tokenizer, sample_begin: int, max_initial_timestamp_index: Optional[int],
                 last_timestamp_index: Optional[int] = None):  # fmt: skip
        self.tokenizer = tokenizer
        self.sample_begin = sample_begin
        self.max_initial_timestamp_index = max_initial_timestamp_index
        self.last_timestamp_index = last_timestamp_index

    def apply(self, logits: Tensor, tokens: Tensor) -> None:
        ts_begin, eot = self.tokenizer.timestamp_begin, self.tokenizer.eot
        logits[:, self.tokenizer.no_timestamps] = -np.inf
        if self.last_timestamp_index is not None:
            logits[:, ts_begin + self.last_timestamp_index + 1 :] = -np.inf
        for row in range(tokens.shape[0]):
            self._apply_pairing(logits[row], tokens[row, self.sample_begin :].tolist(), ts_begin, eot)
        if tokens.shape[1] == self.sample_begin:
            logits[:, :ts_begin] = -np.inf  # the text must start with a timestamp
            if self.max_initial_timestamp_index is not None:
                logits[:, ts_begin + self.max_initial_timestamp_index + 1 :] = -np.inf
        logprobs = F.log_softmax(logits.float(), dim=-1)
        timestamp_logprob = logprobs[:, ts_begin:].logsumexp(dim=-1)
        max_text_logprob = logprobs[:, :ts_begin].max(dim=-1).values
        logits[timestamp_logprob > max_text_logprob, :ts_begin] = -np.inf

    @staticmethod
    def _apply_pairing(logits: Tensor, sampled: List[int], ts_begin: int, eot: int) -> None:
        last_was_ts = len(sampled) >= 1 and sampled[-1] >= ts_begin
        penultimate_was_ts = len(sampled) < 2 or sampled[-2] >= ts_begin
        if last_was_ts:
            if penultimate_was_ts:  # a pair just closed: text must follow
                logits[ts_begin:] = -np.inf
            else:  # an opening timestamp: another timestamp or the end must follow
                logits[:eot] = -np.inf
        timestamps = [t for t in sampled if t >= ts_begin]
        if timestamps:
            floor = timestamps[-1] if last_was_ts and not penultimate_was_ts else timestamps[-1] + 1
            logits[ts_begin:floor] = -np.inf


class TokenDecoder:
    def reset(self) -> None:
        pass

    def update(self, tokens: Tensor, logits: Tensor, sum_logprobs: Tensor) -> Tuple[Tensor, bool, Optional[Tensor]]:
        """Append the next token to each row; returns (tokens, all finished, cache rows to keep or None)."""
        raise NotImplementedError

    def finalize(self, tokens: Tensor, sum_logprobs: Tensor) -> Tuple[List[List[Tensor]], List[List[float]]]:
        raise NotImplementedError


class GreedyDecoder(TokenDecoder):
    """Argmax at temperature 0, otherwise sampling from the tempered distribution."""

    def __init__(self, temperature: float, eot: int, seed: Optional[int] = None):
        self.temperature, self.eot, self.seed = temperature, eot, seed
        self._generator: Optional[torch.Generator] = None

    def update(self, tokens: Tensor, logits: Tensor, sum_logprobs: Tensor) -> Tuple[Tensor, bool, None]:
        if self.temperature == 0:
            next_tokens = logits.argmax(dim=-1)
        else:
            next_tokens = self._sample(logits)
        logprobs = F.log_softmax(logits.float(), dim=-1)
        current = logprobs[torch.arange(logprobs.shape[0]), next_tokens]
        still_running = tokens[:, -1] != self.eot
        sum_logprobs += current * still_running
        next_tokens[~still_running] = self.eot
        tokens = torch.cat([tokens, next_tokens[:, None]], dim=-1)
        return tokens, bool((tokens[:, -1] == self.eot).all()), None

    def _sample(self, logits: Tensor) -> Tensor:
        if self.seed is None:
            return Categorical(logits=logits / self.temperature).sample()
        if self._generator is None:
            self._generator = torch.Generator(device=logits.device).manual_seed(self.seed)
        probs = F.softmax(logits.float() / self.temperature, dim=-1)
        return torch.multinomial(probs, 1, generator=self._generator).squeeze(-1)

    def finalize(self, tokens: Tensor, sum_logprobs: Tensor):
        tokens = F.pad(tokens, (0, 1), value=self.eot)  # every sequence ends with eot
        return tokens, sum_logprobs.tolist()


class BeamSearchDecoder(TokenDecoder):
    """Beam search per audio; stops once ``beam_size * patience`` finished candidates are collected."""

    def __init__(self, beam_size: int, eot: int, patience: Optional[float] = None):
        self.beam_size, self.eot = beam_size, eot
        self.patience = patience or 1.0
        self.max_candidates = round(beam_size * self.patience)
        if self.max_candidates <= 0:
            raise ValueError(f"invalid beam size {beam_size} with patience {patience}")
        self.finished: List[Dict[Tuple[int, ...], float]] = []

    def reset(self) -> None:
        self.finished = []

    def update(self, tokens: Tensor, logits: Tensor, sum_logprobs: Tensor) -> Tuple[Tensor, bool, Tensor]:
        n_audio = tokens.shape[0] // self.beam_size
        if not self.finished:
            self.finished = [{} for _ in range(n_audio)]
        logprobs = F.log_softmax(logits.float(), dim=-1)
        top_logprobs, top_tokens = logprobs.topk(self.beam_size + 1, dim=-1)
        next_tokens, source_rows, new_sums = [], [], []
        for audio in range(n_audio):
            candidates: Dict[Tuple[int, ...], Tuple[float, int]] = {}
            for row in range(audio * self.beam_size, (audio + 1) * self.beam_size):
                prefix = tuple(tokens[row].tolist())
                for logprob, token in zip(top_logprobs[row].tolist(), top_tokens[row].tolist()):
                    candidates[prefix + (token,)] = (sum_logprobs[row].item() + logprob, row)
            kept, newly_finished = 0, {}
            for sequence, (score, row) in sorted(candidates.items(), key=lambda kv: -kv[1][0]):
                if kept == self.beam_size:
                    break  # only endings that outrank a surviving beam count as finished
                if sequence[-1] == self.eot:
                    newly_finished[sequence[:-1]] = score
                else:
                    next_tokens.append(sequence)
                    source_rows.append(row)
                    new_sums.append(score)
                    kept += 1
            for sequence, score in newly_finished.items():
                if len(self.finished[audio]) >= self.max_candidates:
                    break
                self.finished[audio].setdefault(sequence, score)
            while kept < self.beam_size:  # every continuation ended: pad with finished copies
                next_tokens.append(tuple(tokens[audio * self.beam_size].tolist()) + (self.eot,))
                source_rows.append(audio * self.beam_size)
                new_sums.append(-np.inf)
                kept += 1
        tokens = torch.tensor(next_tokens, device=tokens.device)
        sum_logprobs.copy_(torch.tensor(new_sums, device=sum_logprobs.device))
        done = all(len(f) >= self.max_candidates for f in self.finished)
        return tokens, done, torch.tensor(source_rows, device=tokens.device)

    def finalize(self, tokens: Tensor, sum_logprobs: Tensor):
        n_audio = tokens.shape[0] // self.beam_size
        sequences, scores = [], []
        for audio in range(n_audio):
            finished = dict(self.finished[audio]) if self.finished else {}
            if len(finished) < self.beam_size:  # fall back to unfinished beams, best first
                rows = range(audio * self.beam_size, (audio + 1) * self.beam_size)
                for row in sorted(rows, key=lambda r: -sum_logprobs[r].item()):
                    if sum_logprobs[row].item() > -np.inf:
                        finished.setdefault(tuple(tokens[row].tolist()), sum_logprobs[row].item())
                    if len(finished) >= self.beam_size:
                        break
            sequences.append([torch.tensor(seq) for seq in finished])
            scores.append(list(finished.values()))
        return sequences, scores


def rank_by_likelihood(
    sequences: List[Tensor], sum_logprobs: List[float], length_penalty: Optional[float]
) -> int:
    """Index of the best candidate: sum logprob over a length penalty (Google NMT's when given)."""

    def score(length: int, logprob: float) -> float:
        if length_penalty is None:
            return logprob / max(length, 1)
        return logprob / (((5 + length) / 6) ** length_penalty)

    return int(np.argmax([score(len(s), lp) for s, lp in zip(sequences, sum_logprobs)]))


@torch.no_grad()
def detect_language(
    model: "Whisper", mel: Tensor, tokenizer: Optional[Tokenizer] = None, candidates: Sequence[str] = ()
) -> Tuple[Tensor, Union[Dict[str, float], List[Dict[str, float]]]]:
    """Most likely language token per audio, and the probability of every language (of the
    `candidates` only, when given: the others get 0)."""
    if tokenizer is None:
        tokenizer = get_tokenizer(model.is_multilingual, num_languages=model.num_languages)
    if not model.is_multilingual:
        raise ValueError("this model is English-only: it has no language tokens to detect with")
    single = mel.ndim == 2
    if single:
        mel = mel.unsqueeze(0)
    features = mel if mel.shape[-1] == model.dims.n_audio_state else model.embed_audio(mel)
    cache = model.decoder.new_cache(features)
    sot = torch.full((features.shape[0], 1), tokenizer.sot, device=features.device)
    languages = _language_tokens(tokenizer, candidates)
    logits = model.decoder(sot, cache, exact_tokens=torch.tensor(languages, device=features.device))[0][:, 0]
    mask = torch.ones(logits.shape[-1], dtype=torch.bool)
    mask[languages] = False
    logits[:, mask] = -np.inf
    language_tokens = logits.argmax(dim=-1)
    probs = logits.softmax(dim=-1).cpu()
    codes = tokenizer.all_language_codes
    language_probs = [
        {code: probs[i, token].item() for code, token in zip(codes, tokenizer.all_language_tokens)}
        for i in range(features.shape[0])
    ]
    if single:
        return language_tokens[0], language_probs[0]
    return language_tokens, language_probs


def _most_likely(probabilities: Mapping[str, float], log_prior: Mapping[str, float]) -> str:
    if not log_prior:
        return max(probabilities, key=probabilities.get)
    floor = min(log_prior.values())  # a language the prior never saw gets its least likely's weight
    return max(probabilities, key=lambda code: math.log(max(probabilities[code], 1e-12)) + log_prior.get(code, floor))


def _language_tokens(tokenizer: Tokenizer, candidates: Sequence[str]) -> List[int]:
    if not candidates:
        return list(tokenizer.all_language_tokens)
    codes = tokenizer.all_language_codes
    unknown = [code for code in candidates if code not in codes]
    if unknown:
        raise ValueError(f"unknown language code(s) {', '.join(unknown)}: use codes such as es, fr, it, ru")
    return [token for code, token in zip(codes, tokenizer.all_language_tokens) if code in candidates]


class DecodingTask:
    """Composes the tokenizer, logit filters, a token decoder and ranking for one decode call."""

    def __init__(self, model: "Whisper", options: DecodingOptions, collect_alignment: bool = False,
                 on_step: Optional[Callable[[], None]] = None,
                 on_result: Optional[Callable[[int, "DecodingResult"], None]] = None):  # fmt: skip
        self.model = model
        self.on_step = on_step  # called after every decoding step (the streaming engine polls its audio)
        # Called with a row and its result as soon as that row has ended, while others decode on
        # (greedy decoding only; run still returns every result): in a batch of finals, a short
        # utterance's result need not wait for the longest one's.
        self.on_result = on_result
        self.collect_alignment = collect_alignment and options.beam_size is None and not options.best_of
        language = options.language or ("en" if not model.is_multilingual else None)
        self.tokenizer = get_tokenizer(
            model.is_multilingual, num_languages=model.num_languages, language=language or "en", task=options.task
        )
        self.options = self._verify(options)
        self.n_group = options.beam_size or options.best_of or 1
        self.n_ctx = model.dims.n_text_ctx
        self.sample_len = options.sample_len or self.n_ctx // 2
        self.initial_tokens = self._initial_tokens()
        self.sample_begin = len(self.initial_tokens)
        self.sot_index = self.initial_tokens.index(self.tokenizer.sot)
        if options.beam_size is not None:
            self.decoder: TokenDecoder = BeamSearchDecoder(options.beam_size, self.tokenizer.eot, options.patience)
        else:
            self.decoder = GreedyDecoder(options.temperature, self.tokenizer.eot, options.seed)

    @staticmethod
    def _verify(options: DecodingOptions) -> DecodingOptions:
        if options.beam_size is not None and options.best_of is not None:
            raise ValueError("beam_size and best_of can't be given together")
        if options.temperature == 0 and options.best_of is not None:
            raise ValueError("best_of with greedy sampling (temperature 0) is not compatible")
        if options.patience is not None and options.beam_size is None:
            raise ValueError("patience requires beam_size to be given")
        if options.length_penalty is not None and not 0 <= options.length_penalty <= 1:
            raise ValueError("length_penalty (alpha) should be between 0 and 1")
        if options.task not in ("transcribe", "translate"):
            raise ValueError(f"unknown task {options.task!r}: use 'transcribe' or 'translate'")
        if options.grammar is not None and not options.without_timestamps:
            raise ValueError("a grammar constrains the text: decode it with without_timestamps=True")
        return options

    def _as_tokens(self, text_or_tokens: Union[str, List[int]]) -> List[int]:
        if isinstance(text_or_tokens, str):
            return self.tokenizer.encode(" " + text_or_tokens.strip())
        return list(text_or_tokens)

    def _initial_tokens(self) -> Tuple[int, ...]:
        tokens = list(self.tokenizer.sot_sequence)
        if self.options.without_timestamps:
            tokens.append(self.tokenizer.no_timestamps)
        if self.options.prefix:
            prefix = self._as_tokens(self.options.prefix)
            tokens += prefix[-(self.n_ctx // 2 - self.sample_len) :] if self.sample_len < self.n_ctx // 2 else prefix
        if self.options.prompt:
            prompt = self._as_tokens(self.options.prompt)
            tokens = [self.tokenizer.sot_prev] + prompt[-(self.n_ctx // 2 - 1) :] + tokens
        return tuple(tokens)

    def _suppress_tokens(self) -> List[int]:
        spec = self.options.suppress_tokens
        tokens: List[int] = []
        if isinstance(spec, str):
            tokens = [int(t) for t in spec.split(",") if t.strip()]
        elif spec is not None:
            tokens = list(spec)
        if -1 in tokens:
            tokens = [t for t in tokens if t >= 0] + list(self.tokenizer.non_speech_tokens)
        tk = self.tokenizer
        tokens += [tk.transcribe, tk.translate, tk.sot, tk.sot_prev, tk.sot_lm, tk.no_speech]
        return sorted(set(tokens))

    def _logit_filters(self, n_audio_frames: int, speech: Optional[Sequence[Optional[float]]] = None
                       ) -> List[LogitFilter]:  # fmt: skip
        filters: List[LogitFilter] = []
        if self.options.suppress_blank:
            filters.append(SuppressBlank(self.tokenizer, self.sample_begin))
        if self.options.suppress_tokens:
            filters.append(SuppressTokens(self._suppress_tokens()))
        if self.options.vocabulary is not None:  # on what the model may write, before rules narrow it
            filters.append(self.options.vocabulary.logit_filter(self.tokenizer, self.sample_begin))
        if not self.options.without_timestamps:
            precision_s = CHUNK_LENGTH_S / self.model.dims.n_audio_ctx  # 0.02 s per position
            max_initial = None
            if self.options.max_initial_timestamp:
                max_initial = round(self.options.max_initial_timestamp / precision_s)
            last_index = None if n_audio_frames >= N_FRAMES else n_audio_frames // 2
            filters.append(ApplyTimestampRules(self.tokenizer, self.sample_begin, max_initial, last_index))
        if self.options.grammar is not None:  # whatever the others leave, the grammar narrows
            filters.append(self.options.grammar.logit_filter(self.tokenizer, self.sample_begin))
        if self.options.loop_rule is not None:  # last: it only forbids, and never leaves a row nothing
            filters.append(LoopFilter(self.options.loop_rule, self.tokenizer, self.sample_begin, speech, self.n_group))
        return filters

    def _languages(self, features: Tensor, priors: Optional[Sequence[Mapping[str, float]]]
                   ) -> Tuple[List[str], Optional[List[Dict[str, float]]]]:  # fmt: skip
        n_audio = features.shape[0]
        if self.options.language is not None or not self.model.is_multilingual:
            return [self.options.language or "en"] * n_audio, None
        tokens, probs = detect_language(self.model, features, self.tokenizer, self.options.language_candidates)
        codes = [_most_likely(p, priors[i] if priors else {}) for i, p in enumerate(probs)]
        return codes, probs

    @torch.no_grad()
    def run(self, mel: Tensor, language_priors: Optional[Sequence[Mapping[str, float]]] = None,
            speech: Optional[Sequence[Optional[float]]] = None) -> List[DecodingResult]:  # fmt: skip
        """Decode every row of ``mel`` (or of audio features). Where the language is detected,
        ``language_priors`` may give each row log-weights per language to add to its detection's
        log-probabilities (what a call's earlier utterances said); results keep the row's own
        probabilities in ``language_probs``. ``speech``: each row's seconds of speech
        (``loops.speech_s``), which bound the runs of one digit the loop rule lets through;
        measured here from a mel, None for features (any run of one digit over the rule's is a loop)."""
        n_frames = mel.shape[-1] if mel.shape[-2] == self.model.dims.n_mels else 2 * mel.shape[-2]
        if speech is None and mel.shape[-2] == self.model.dims.n_mels:
            speech = [speech_s(row, n_frames) for row in mel]
        self._speech = list(speech) if speech is not None else [None] * mel.shape[0]
        features = mel if mel.shape[-2] != self.model.dims.n_mels else self.model.embed_audio(mel)
        languages, language_probs = self._languages(features, language_priors)
        n_audio = features.shape[0]
        tokens = torch.tensor([list(self.initial_tokens)], device=features.device).repeat(n_audio, 1)
        if self.model.is_multilingual and self.options.language is None:
            tokens[:, self.sot_index + 1] = torch.tensor(
                [self.tokenizer.to_language_token(code) for code in languages], device=features.device
            )
        tokens = tokens.repeat_interleave(self.n_group, dim=0)
        cache = self.model.decoder.new_cache(features.repeat_interleave(self.n_group, dim=0))
        finish = functools.partial(self._finished, features=features, languages=languages,
                                   language_probs=language_probs)  # fmt: skip
        tokens, sum_logprobs, no_speech_probs = self._main_loop(tokens, cache, n_frames, finish)
        return finish(range(n_audio), tokens, sum_logprobs, no_speech_probs)

    def _finished(self, rows: Sequence[int], tokens, sum_logprobs, no_speech_probs, *, features, languages,
                  language_probs) -> List[DecodingResult]:  # fmt: skip
        """The results of audio ``rows``, from what has been decoded so far."""
        results = self._results(features, tokens, sum_logprobs, no_speech_probs, languages, language_probs, rows)
        if self.collect_alignment:
            # Each layer's weights over all decoded positions: (1, heads, positions, audio positions).
            n_layers = len(self._weights[0])
            results = [
                self._with_alignment(result, [torch.cat([step[layer][i : i + 1] for step in self._weights], dim=2)
                                              for layer in range(n_layers)], i)
                for i, result in zip(rows, results)
            ]  # fmt: skip
        return results

    def _with_alignment(self, result: DecodingResult, layers: List[Tensor], row: int) -> DecodingResult:
        """``layers``: the row's own weights per layer."""
        if result.loops:  # tokens were cut out: the recorded positions no longer match them
            return result
        n_rows = self.sample_begin + len(result.tokens)  # up to the position that predicted eot
        weights = [layer[:, :, :n_rows] for layer in layers]
        probs = [step_probs[row] for step_probs in self._chosen_probs[: len(result.tokens)]]
        return replace(result, cross_attention=weights, token_probs=probs)

    def _exact_tokens(self, filters: Sequence[LogitFilter]) -> Tensor:
        """Tokens whose logits a decision reads beyond the highest ones, kept in full precision
        where the model computes logits in low precision: no-speech and end-of-text, the
        timestamps (their total weighs against the text's), a grammar's tokens."""
        tk = self.tokenizer
        exact = {tk.no_speech, tk.eot}
        if not self.options.without_timestamps:
            exact.update(range(tk.timestamp_begin, self.model.dims.n_vocab))
        for logit_filter in filters:
            exact.update(logit_filter.candidates() or ())
        return torch.tensor(sorted(exact), device=self.model.device)

    def _main_loop(self, tokens: Tensor, cache: "DecoderCache", n_frames: int,
                   finish: Callable[..., List[DecodingResult]]) -> Tuple[Tensor, Tensor, List[float]]:  # fmt: skip
        filters = self._logit_filters(n_frames, self._speech)
        exact = self._exact_tokens(filters)
        sum_logprobs = torch.zeros(tokens.shape[0], device=tokens.device)
        no_speech_probs: List[float] = []
        self.decoder.reset()
        step_tokens = tokens
        self._weights: List[List[Tensor]] = []
        self._chosen_probs: List[List[float]] = []
        active: Optional[Tensor] = None  # rows still decoding, when finished ones have left the cache
        for step in range(self.sample_len):
            logits, weights = self._step(step_tokens, cache, active, tokens.shape[0], exact)
            if self.collect_alignment:
                self._weights.append(weights)
            if step == 0:
                probs_at_sot = logits[:, self.sot_index].float().softmax(dim=-1)
                no_speech_probs = probs_at_sot[:, self.tokenizer.no_speech].tolist()
            logits = logits[:, -1].clone()
            for logit_filter in filters:
                logit_filter.apply(logits, tokens)
            tokens, done, keep_rows = self.decoder.update(tokens, logits, sum_logprobs)
            if self.collect_alignment:
                probs = logits[:, : self.tokenizer.eot].float().softmax(dim=-1)
                chosen = tokens[:, -1].clamp(max=self.tokenizer.eot - 1)
                self._chosen_probs.append(probs[torch.arange(len(chosen)), chosen].tolist())
            if keep_rows is not None:
                cache.reorder(keep_rows)
            if done or tokens.shape[-1] > self.n_ctx:
                break
            if isinstance(self.decoder, GreedyDecoder):
                active = self._retire_finished(tokens, cache, active)
                if self.on_result is not None and self.n_group == 1:
                    self._report_ended(finish, tokens, sum_logprobs, no_speech_probs)
            if self.on_step is not None:
                self.on_step()
            step_tokens = tokens[:, -1:] if active is None else tokens[active, -1:]
        return tokens, sum_logprobs, no_speech_probs

    def _step(self, step_tokens: Tensor, cache: "DecoderCache", active: Optional[Tensor], n_rows: int,
              exact: Tensor):  # fmt: skip
        """One decoder pass over the active rows; logits and weights come back for all ``n_rows``
        (zeros for finished rows, which greedy decoding only ever extends with end-of-text)."""
        logits, weights = self.model.decoder(step_tokens, cache, want_weights=self.collect_alignment,
                                             exact_tokens=exact)  # fmt: skip
        if active is None:
            return logits, weights
        scatter = lambda t: t.new_zeros((n_rows,) + t.shape[1:]).index_copy_(0, active, t)  # noqa: E731
        return scatter(logits), [None if w is None else scatter(w) for w in weights]

    def _report_ended(self, finish, tokens: Tensor, *state) -> None:
        """Pass on the rows that reached end-of-text at this step (one row per audio)."""
        eot = self.tokenizer.eot
        rows = ((tokens[:, -1] == eot) & (tokens[:, -2] != eot)).nonzero().squeeze(1).tolist()
        for row, result in zip(rows, finish(rows, tokens, *state)):
            self.on_result(row, result)

    def _retire_finished(self, tokens: Tensor, cache: "DecoderCache", active: Optional[Tensor]) -> Optional[Tensor]:
        """Drop rows that reached end-of-text from the cache: each step reads every row's cross-attention
        keys and values, which costs as much as the rest of the step."""
        active = torch.arange(tokens.shape[0], device=tokens.device) if active is None else active
        keep = (tokens[active, -1] != self.tokenizer.eot).nonzero().squeeze(1)
        if len(keep) == len(active):
            return None if len(active) == tokens.shape[0] else active
        cache.select_audio(keep)
        return active[keep]

    def _results(self, features, tokens, sum_logprobs, no_speech_probs, languages, language_probs,
                 rows: Sequence[int]) -> List[DecodingResult]:  # fmt: skip
        n_audio = features.shape[0]
        no_speech = no_speech_probs[:: self.n_group]
        candidates, scores = self.decoder.finalize(tokens, sum_logprobs)
        if isinstance(candidates, Tensor):  # greedy/sampling: n_group rows per audio
            candidates = [list(candidates[i * self.n_group : (i + 1) * self.n_group]) for i in range(n_audio)]
            scores = [scores[i * self.n_group : (i + 1) * self.n_group] for i in range(n_audio)]
        results = []
        for i in rows:
            texts = [self._text_tokens(seq) for seq in candidates[i]]
            best = rank_by_likelihood(texts, scores[i], self.options.length_penalty)
            best_tokens, loops = self._without_loops(texts[best], self._speech[i])
            text = self.tokenizer.decode(best_tokens).strip()
            results.append(DecodingResult(
                audio_features=features[i], language=languages[i],
                language_probs=language_probs[i] if language_probs else None, tokens=best_tokens, text=text,
                avg_logprob=scores[i][best] / (len(texts[best]) + 1), no_speech_prob=no_speech[i],
                temperature=self.options.temperature, compression_ratio=compression_ratio(text), loops=loops,
            ))  # fmt: skip
        return results

    def _without_loops(self, tokens: List[int], speech: Optional[float]) -> Tuple[List[int], Tuple[str, ...]]:
        if self.options.loop_rule is None:
            return tokens, ()
        kept, loops = cut_loops(tokens, self.options.loop_rule, self.tokenizer, speech)
        if loops:  # counted by benchmarks.telephone_accuracy; the text itself only at DEBUG
            log.debug("cut %d loop(s) out of a decode: %r", len(loops), loops)
        return kept, loops

    def _text_tokens(self, sequence: Tensor) -> List[int]:
        sampled = sequence[self.sample_begin :].tolist()
        return sampled[: sampled.index(self.tokenizer.eot)] if self.tokenizer.eot in sampled else sampled


def decode(
    model: "Whisper", mel: Tensor, options: Optional[DecodingOptions] = None, **kwargs
) -> Union[DecodingResult, List[DecodingResult]]:
    """Decode one (n_mels, frames) or a batch (batch, n_mels, frames) of log-mel windows."""
    options = replace(options or DecodingOptions(), **kwargs)
    single = mel.ndim == 2
    if single:
        mel = mel.unsqueeze(0)
    results = DecodingTask(model, options).run(mel.to(model.device))
    return results[0] if single else results
