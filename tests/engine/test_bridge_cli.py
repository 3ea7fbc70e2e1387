"""The `audiosocket-bridge` command as an administrator runs it: a real process, real model, SIGTERM."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from audiosocket_bridge.outputs.storage import open_storage
from audiosocket_bridge.testing.audiosocket_client import AudioSocketClient
from audiosocket_bridge.testing.ports import free_port, wait_listening
from audiosocket_bridge.testing.prompts import prompt

REPO = Path(__file__).resolve().parents[2]


def test_sigterm_mid_call_stores_the_last_words_and_exits_cleanly(tmp_path):
    port, db = free_port(), tmp_path / "calls.db"
    process = subprocess.Popen(
        [sys.executable, "-m", "audiosocket_bridge.cli", "--listen", f"127.0.0.1:{port}",
         "--storage", f"sqlite:///{db}", "--log-level", "INFO"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    try:
        wait_listening(port, process)
        pcm = prompt("agent-pass").pcm

        async def call_then_sigterm() -> str:
            client = await AudioSocketClient("127.0.0.1", port).connect()
            await client.send_audio(pcm, 8000, realtime=True)  # no trailing silence: still mid-utterance
            process.send_signal(signal.SIGTERM)
            await client.wait_server_end(timeout_s=30)
            await client.close()
            return client.call_uuid

        call_uuid = asyncio.run(call_then_sigterm())
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    storage = open_storage(f"sqlite:///{db}")
    stored = storage.get_call(call_uuid)
    assert stored is not None and stored.end_reason == "shutdown", output
    assert "password" in (storage.transcript_text(call_uuid) or "").lower(), output
    assert call_uuid in output  # the console lines an operator sees: the call, not its words
    spoken = output.lower().replace("storage_password_file", "")  # the setting's name, in its repr
    assert "password" not in spoken  # transcripts are logged at DEBUG only
