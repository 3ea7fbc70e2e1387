"""Transcript normalisers for scoring, as openai-whisper's ``whisper.normalizers`` offers them."""
from .basic import BasicTextNormalizer
from .english import EnglishNumberNormalizer, EnglishSpellingNormalizer, EnglishTextNormalizer

__all__ = ["BasicTextNormalizer", "EnglishNumberNormalizer", "EnglishSpellingNormalizer", "EnglishTextNormalizer"]
