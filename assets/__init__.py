"""The tokenizer vocabularies, installed as the package ``whisper.assets`` (see setup.cfg).

Read them with ``whisper.tokenizer.vocabulary_path``; ``make_vocab.py`` regenerates them.
"""
