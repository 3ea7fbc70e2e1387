"""Whisper's byte-level BPE tokenizer on tiktoken, with every special token."""
from __future__ import annotations

import base64
import functools
import json
import string
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import tiktoken

# The top-level assets/ folder, which setup.cfg installs as the package whisper.assets.
VOCABULARY_PACKAGE = "whisper.assets"
_CHECKOUT_ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"

# Whisper's language tokens, in vocabulary order ("yue" exists only in large-v3's 100-language vocabulary).
LANGUAGES: Dict[str, str] = {
    "en": "english", "zh": "chinese", "de": "german", "es": "spanish", "ru": "russian", "ko": "korean",
    "fr": "french", "ja": "japanese", "pt": "portuguese", "tr": "turkish", "pl": "polish", "ca": "catalan",
    "nl": "dutch", "ar": "arabic", "sv": "swedish", "it": "italian", "id": "indonesian", "hi": "hindi",
    "fi": "finnish", "vi": "vietnamese", "he": "hebrew", "uk": "ukrainian", "el": "greek", "ms": "malay",
    "cs": "czech", "ro": "romanian", "da": "danish", "hu": "hungarian", "ta": "tamil", "no": "norwegian",
    "th": "thai", "ur": "urdu", "hr": "croatian", "bg": "bulgarian", "lt": "lithuanian", "la": "latin",
    "mi": "maori", "ml": "malayalam", "cy": "welsh", "sk": "slovak", "te": "telugu", "fa": "persian",
    "lv": "latvian", "bn": "bengali", "sr": "serbian", "az": "azerbaijani", "sl": "slovenian", "kn": "kannada",
    "et": "estonian", "mk": "macedonian", "br": "breton", "eu": "basque", "is": "icelandic", "hy": "armenian",
    "ne": "nepali", "mn": "mongolian", "bs": "bosnian", "kk": "kazakh", "sq": "albanian", "sw": "swahili",
    "gl": "galician", "mr": "marathi", "pa": "punjabi", "si": "sinhala", "km": "khmer", "sn": "shona",
    "yo": "yoruba", "so": "somali", "af": "afrikaans", "oc": "occitan", "ka": "georgian", "be": "belarusian",
    "tg": "tajik", "sd": "sindhi", "gu": "gujarati", "am": "amharic", "yi": "yiddish", "lo": "lao",
    "uz": "uzbek", "fo": "faroese", "ht": "haitian creole", "ps": "pashto", "tk": "turkmen", "nn": "nynorsk",
    "mt": "maltese", "sa": "sanskrit", "lb": "luxembourgish", "my": "myanmar", "bo": "tibetan",
    "tl": "tagalog", "mg": "malagasy", "as": "assamese", "tt": "tatar", "haw": "hawaiian", "ln": "lingala",
    "ha": "hausa", "ba": "bashkir", "jw": "javanese", "su": "sundanese", "yue": "cantonese",
}  # fmt: skip

TO_LANGUAGE_CODE = {name: code for code, name in LANGUAGES.items()}
TIMESTAMP_STEP_S = 0.02
N_TIMESTAMPS = 1501  # <|0.00|> .. <|30.00|>

# GPT-2's pre-tokenisation pattern, which both Whisper vocabularies use.
_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


@functools.lru_cache(maxsize=1)
def _byte_level_alphabet() -> Dict[str, int]:
    """GPT-2's printable stand-in character for each byte value, as byte-level BPE vocabularies store them."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[chr(byte)] = byte
        else:
            chars[chr(256 + extra)] = byte
            extra += 1
    return chars


def ranks_from_tokenizer_json(path: Path) -> Dict[bytes, int]:
    """BPE ranks (token bytes -> id) from a Hugging Face ``tokenizer.json`` byte-level vocabulary."""
    alphabet = _byte_level_alphabet()
    tokenizer = json.loads(Path(path).read_text(encoding="utf-8"))
    special_ids = {added["id"] for added in tokenizer.get("added_tokens", [])}
    ranks = {}
    for token, rank in tokenizer["model"]["vocab"].items():
        if rank in special_ids or not token or any(ch not in alphabet for ch in token):
            continue  # <|endoftext|> and friends are tiktoken special tokens, not BPE ranks
        ranks[bytes(alphabet[ch] for ch in token)] = rank
    return ranks


def write_tiktoken_file(ranks: Dict[bytes, int], path: Path) -> None:
    lines = (f"{base64.b64encode(token).decode()} {rank}\n" for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]))
    Path(path).write_text("".join(lines), encoding="ascii")


def read_tiktoken_file(path: Path) -> Dict[bytes, int]:
    ranks = {}
    for line in Path(path).read_text(encoding="ascii").splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def vocabulary_folder() -> Path:
    """The installed package whisper.assets, else the top-level assets/ of the source tree.

    The fallback serves a checkout imported without installing it, and editable installs made
    before setup.cfg mapped assets/ into the package (their import hook cannot find whisper.assets).
    """
    try:
        return Path(resources.files(VOCABULARY_PACKAGE))
    except ModuleNotFoundError:
        return _CHECKOUT_ASSETS_DIR


def vocabulary_path(name: str) -> Path:
    """The ``{name}.tiktoken`` vocabulary file, or FileNotFoundError that says how to get it back."""
    path = vocabulary_folder() / f"{name}.tiktoken"
    if not path.is_file():
        raise FileNotFoundError(
            f"tokenizer vocabulary {path} is missing: reinstall asterisk-whisper-bridge "
            "(in its checkout: pip install --force-reinstall --no-deps .)"
        )
    return path


# The multilingual vocabulary leaves id 50256 unused, so its special tokens start one later.
_FIRST_SPECIAL_ID = {"gpt2": 50256, "multilingual": 50257}


@functools.lru_cache(maxsize=None)
def get_encoding(name: str = "gpt2", num_languages: int = 99) -> tiktoken.Encoding:
    """``name`` is "gpt2" (English-only models) or "multilingual"; see ``vocabulary_path``."""
    ranks = read_tiktoken_file(vocabulary_path(name))
    n_vocab = _FIRST_SPECIAL_ID[name]
    specials = [
        "<|endoftext|>",
        "<|startoftranscript|>",
        *[f"<|{code}|>" for code in list(LANGUAGES)[:num_languages]],
        "<|translate|>",
        "<|transcribe|>",
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nospeech|>",
        "<|notimestamps|>",
        *[f"<|{i * TIMESTAMP_STEP_S:.2f}|>" for i in range(N_TIMESTAMPS)],
    ]
    special_tokens = {token: n_vocab + i for i, token in enumerate(specials)}
    return tiktoken.Encoding(
        name=f"{name}-{num_languages}", pat_str=_PATTERN,
        mergeable_ranks=ranks, special_tokens=special_tokens,
    )


@dataclass
class Tokenizer:
    """Text <-> token ids, and the ids of Whisper's special tokens for one language and task."""

    encoding: tiktoken.Encoding
    num_languages: int
    language: Optional[str] = None
    task: Optional[str] = None
    sot_sequence: Tuple[int, ...] = ()
    special_tokens: Dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for special in self.encoding.special_tokens_set:
            self.special_tokens[special] = self.encoding.encode_single_token(special)
        sot = [self.special_tokens["<|startoftranscript|>"]]
        if self.language is not None:
            sot.append(self.to_language_token(self.language))
        if self.task is not None:
            sot.append(self.transcribe if self.task == "transcribe" else self.translate)
        self.sot_sequence = tuple(sot)

    def encode(self, text: str, **kwargs) -> List[int]:
        return self.encoding.encode(text, **kwargs)

    def decode(self, token_ids: List[int], **kwargs) -> str:
        return self.encoding.decode([t for t in token_ids if t < self.timestamp_begin], **kwargs)

    def decode_with_timestamps(self, token_ids: List[int]) -> str:
        return self.encoding.decode(token_ids)

    @property
    def eot(self) -> int:
        return self.encoding.eot_token

    transcribe = property(lambda self: self.special_tokens["<|transcribe|>"])
    translate = property(lambda self: self.special_tokens["<|translate|>"])
    sot = property(lambda self: self.special_tokens["<|startoftranscript|>"])
    sot_lm = property(lambda self: self.special_tokens["<|startoflm|>"])
    sot_prev = property(lambda self: self.special_tokens["<|startofprev|>"])
    no_speech = property(lambda self: self.special_tokens["<|nospeech|>"])
    no_timestamps = property(lambda self: self.special_tokens["<|notimestamps|>"])
    timestamp_begin = property(lambda self: self.special_tokens["<|0.00|>"])

    @property
    def language_token(self) -> int:
        if self.language is None:
            raise ValueError("this tokenizer has no language")
        return self.to_language_token(self.language)

    def to_language_token(self, language: str) -> int:
        token = self.special_tokens.get(f"<|{language}|>")
        if token is None:
            raise KeyError(f"language {language!r} is not in this vocabulary")
        return token

    @functools.cached_property
    def all_language_tokens(self) -> Tuple[int, ...]:
        return tuple(self.special_tokens[f"<|{code}|>"] for code in list(LANGUAGES)[: self.num_languages])

    @functools.cached_property
    def all_language_codes(self) -> Tuple[str, ...]:
        return tuple(self.decode_with_timestamps([t]).strip("<|>") for t in self.all_language_tokens)

    @functools.cached_property
    def sot_sequence_including_notimestamps(self) -> Tuple[int, ...]:
        return self.sot_sequence + (self.no_timestamps,)

    @functools.cached_property
    def non_speech_tokens(self) -> Tuple[int, ...]:
        """Tokens of symbols that are not spoken (music notes, brackets, ...), suppressed by default."""
        symbols = list('"#()*+/:;<=>@[\\]^_`{|}~「」『』')
        symbols += "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪".split()
        miscellaneous = set("♩♪♫♬♭♮♯")
        result = {self.encoding.encode(" -")[0], self.encoding.encode(" '")[0]}
        for symbol in symbols + list(miscellaneous):
            for tokens in (self.encoding.encode(symbol), self.encoding.encode(" " + symbol)):
                if len(tokens) == 1 or symbol in miscellaneous:
                    result.add(tokens[0])
        return tuple(sorted(result))

    def split_to_word_tokens(self, tokens: List[int]) -> Tuple[List[str], List[List[int]]]:
        """Words and the tokens of each: at spaces, or at character ends for languages written without them."""
        if self.language in {"zh", "ja", "th", "lo", "my", "yue"}:
            return self.split_tokens_on_unicode(tokens)
        return self.split_tokens_on_spaces(tokens)

    def split_tokens_on_unicode(self, tokens: List[int]) -> Tuple[List[str], List[List[int]]]:
        """Tokens grouped so that each group decodes to whole characters.

        A token ending inside a multi-byte character is grouped with the tokens that complete it;
        a byte sequence that is invalid in the whole text stays a group of its own ("\ufffd").
        """
        full_text = self.decode_with_timestamps(tokens)
        words, word_tokens, current, offset = [], [], [], 0
        for token in tokens:
            current.append(token)
            decoded = self.decode_with_timestamps(current)
            if "\ufffd" not in decoded or decoded == full_text[offset : offset + len(decoded)]:
                words.append(decoded)
                word_tokens.append(current)
                current, offset = [], offset + len(decoded)
        return words, word_tokens

    def split_tokens_on_spaces(self, tokens: List[int]) -> Tuple[List[str], List[List[int]]]:
        """Whole-character groups joined into words: a word starts at a space, a punctuation mark
        or a special token."""
        subwords, subword_tokens = self.split_tokens_on_unicode(tokens)
        words, word_tokens = [], []
        for subword, pieces in zip(subwords, subword_tokens):
            special = pieces[0] >= self.eot
            starts_word = subword.startswith(" ")
            punctuation = subword.strip() in string.punctuation
            if special or starts_word or punctuation or not words:
                words.append(subword)
                word_tokens.append(list(pieces))
            else:
                words[-1] += subword
                word_tokens[-1].extend(pieces)
        return words, word_tokens


@functools.lru_cache(maxsize=None)
def get_tokenizer(
    multilingual: bool, *, num_languages: int = 99, language: Optional[str] = None, task: Optional[str] = None
) -> Tokenizer:
    if language is not None:
        language = language.lower()
        if language not in LANGUAGES:
            if language not in TO_LANGUAGE_CODE:
                raise ValueError(f"unsupported language: {language!r}")
            language = TO_LANGUAGE_CODE[language]
    if multilingual:
        name = "multilingual"
        language = language or "en"
        task = task or "transcribe"
    else:
        name, language, task = "gpt2", None, None
    return Tokenizer(get_encoding(name, num_languages), num_languages, language=language, task=task)
