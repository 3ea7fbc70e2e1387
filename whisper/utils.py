"""openai-whisper's ``whisper.utils`` names that code imports: the result writers live in ``writers``."""
from .writers import (ResultWriter, WriteJSON, WriteSRT, WriteTSV, WriteTXT, WriteVTT, format_timestamp,
                      get_writer)  # fmt: skip

__all__ = ["ResultWriter", "WriteJSON", "WriteSRT", "WriteTSV", "WriteTXT", "WriteVTT", "format_timestamp", "get_writer"]
