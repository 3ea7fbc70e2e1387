"""Exports are streamed (outputs/export.py): a long call's export is written a batch of segments
at a time, its memory bounded, its document the same as before."""
import json
import tracemalloc

import pytest

from audiosocket_bridge.outputs.export import export_call, write_call
from audiosocket_bridge.outputs.storage import open_storage
from tests.support.builders import call_info, event

SEGMENTS = 3000
TEXT = " ".join(["word"] * 200)  # 1 KB a segment: 3 MB of text in all


@pytest.fixture(scope="module")
def long_call(tmp_path_factory):
    storage = open_storage(f"sqlite:///{tmp_path_factory.mktemp('long')}/calls.db")
    call = call_info()
    storage.record_call_start(call)
    storage.execute("BEGIN")  # one commit for the lot: the test is about reading them
    for index in range(SEGMENTS):
        storage.record_final(call, event("final", index, f" {index} {TEXT}", uuid=call.uuid))
    storage.execute("COMMIT")
    call.ended_at, call.end_reason = call.started_at, "hangup"
    storage.record_call_end(call)
    yield storage, call.uuid
    storage.close()


def test_a_long_call_is_exported_in_bounded_memory(tmp_path, long_call):
    storage, uuid = long_call
    for fmt, limit_bytes in (("json", 2_000_000), ("srt", 2_000_000)):
        path = tmp_path / f"export.{fmt}"
        tracemalloc.start()
        with open(path, "w", encoding="utf-8") as out:
            assert write_call(storage, uuid, fmt, out)
        peak_bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert path.stat().st_size > 3_000_000
        assert peak_bytes < limit_bytes, (fmt, peak_bytes)  # the export is 3+ MB
    document = json.loads((tmp_path / "export.json").read_text(encoding="utf-8"))
    assert [s["index"] for s in document["segments"]] == list(range(SEGMENTS))
    assert document["text"] == " ".join(f"{i} {TEXT}" for i in range(SEGMENTS))
    assert document["end_reason"] == "hangup"
    srt = (tmp_path / "export.srt").read_text(encoding="utf-8")
    assert srt.startswith("1\n00:00:") and srt.endswith(f"{SEGMENTS - 1} {TEXT}\n")


def test_segments_are_read_in_batches_across_their_boundaries(long_call):
    storage, uuid = long_call
    for batch in (1, 7, 1000, SEGMENTS, SEGMENTS + 1):
        assert [s.index for s in storage.iter_segments(uuid, batch)] == list(range(SEGMENTS))
    assert list(storage.iter_segments("no-such-call")) == []


def test_an_empty_call_exports_a_valid_document(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/calls.db")
    call = call_info()
    try:
        storage.record_call_start(call)
        document = json.loads(export_call(storage, call.uuid, "json"))
        assert document["segments"] == [] and document["text"] == ""
        assert export_call(storage, call.uuid, "vtt") == "WEBVTT\n\n"
        assert export_call(storage, call.uuid, "txt") == ""
    finally:
        storage.close()
