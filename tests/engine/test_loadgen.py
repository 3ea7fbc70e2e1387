"""The load generator against an in-process bridge with the REAL engine (tiny.en), AMI and SQLite."""
import asyncio

import pytest

pytest.importorskip("whisper.streaming")
pytest.importorskip("whisper_normalizer")

from benchmarks.loadgen import AMI_SECRET, AMI_USER, in_process_bridge, run_load  # noqa: E402
from audiosocket_bridge.testing.fake_ami import transcriber  # noqa: E402
from audiosocket_bridge.testing.recording_ami import RecordingAmi  # noqa: E402


def test_two_calls_two_utterances_every_final_reaches_ami_and_storage(real_engine, tmp_path):
    ami = RecordingAmi({AMI_USER: transcriber(AMI_SECRET)})
    ami.start()

    async def scenario():
        async with in_process_bridge(real_engine, ami, f"sqlite:///{tmp_path}/load.db") as bridge:
            return await run_load(*bridge.address, n_calls=2, utterances_per_call=2, ami=ami,
                                  storage=bridge.storage, end_wait_s=40)

    try:
        report = asyncio.run(asyncio.wait_for(scenario(), 55))
    finally:
        ami.stop()
    summary = report.HEADER + "\n" + report.row()
    assert report.calls_completed == 2, summary
    assert all(c.frames_sent == c.frames_planned for c in report.calls), summary
    assert report.utterances_with_final == report.utterances == 4, summary
    assert report.finals_received >= 4, summary
    assert report.finals_stored == report.finals_received, summary
    assert report.finals_lost == 0 and report.finals_mismatched == 0, summary
    assert report.duplicate_finals == 0, summary
    assert report.wer <= 0.25, [(c.reference, c.hypothesis) for c in report.calls]
    assert all(0 < x < 10 for x in report.latencies_s), report.latencies_s
