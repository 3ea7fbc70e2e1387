# These are openai-whisper's tests, run by tests/engine/test_openai_whisper_suite.py in a folder of their own.
collect_ignore_glob = ["test_*.py"]
