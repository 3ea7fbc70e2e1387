"""The bridge as its own process (``python -m audiosocket_bridge.cli``), as an administrator runs
it, for end-to-end tests against a real Asterisk."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..asterisk_pbx import REPO
from audiosocket_bridge.testing.ports import free_port


class BridgeProcess:
    def __init__(self, workdir: Path, *, ami_port: Optional[int] = None, ami_secret: str = "",
                 extra_args: Sequence[str] = (), storage_url: Optional[str] = None,
                 metrics: bool = False) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.audiosocket_port, self.agi_port = free_port(), free_port()
        self.metrics_port = free_port() if metrics else None
        self.storage_url = storage_url or f"sqlite:///{workdir / 'transcripts.db'}"
        self.log_path = workdir / "bridge.log"
        self.ami_port, self.ami_secret = ami_port, ami_secret
        self.extra_args = list(extra_args)
        self.process: Optional[subprocess.Popen] = None
        self._log_start = 0  # where this run's lines begin in the log

    @property
    def transcriber(self) -> str:
        return f"127.0.0.1:{self.audiosocket_port}"

    @property
    def fastagi(self) -> str:
        return f"agi://127.0.0.1:{self.agi_port}"

    def _args(self) -> List[str]:
        args = [sys.executable, "-m", "audiosocket_bridge.cli", "--listen", self.transcriber,
                "--agi-listen", f"127.0.0.1:{self.agi_port}", "--storage", self.storage_url,
                "--model", "tiny.en", "--log-level", "INFO", *self.extra_args]
        if self.metrics_port:
            args += ["--metrics-listen", f"127.0.0.1:{self.metrics_port}"]
        if self.ami_port:
            args += ["--ami-host", "127.0.0.1", "--ami-port", str(self.ami_port),
                     "--ami-user", "transcriber"]
        return args

    def start(self, timeout_s: float = 120.0) -> "BridgeProcess":
        env: Dict[str, str] = {**os.environ, "AUDIOSOCKET_AMI_SECRET": self.ami_secret,
                               "PYTHONUNBUFFERED": "1"}
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:  # a restart appends to the same log
            self.process = subprocess.Popen(self._args(), cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT)
        self.wait_for_log("AudioSocket bridge listening", timeout_s)
        self.wait_for_log("FastAGI listening", timeout_s)
        if self.ami_port:
            self.wait_for_log("AMI connected", timeout_s)
        return self

    def stored(self, uuid: str):
        """(StoredCall or None, its segments) from the bridge's storage."""
        from audiosocket_bridge.outputs.storage import open_storage

        storage = open_storage(self.storage_url)
        try:
            return storage.get_call(uuid), storage.get_segments(uuid)
        finally:
            storage.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, needle: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while needle not in self.log_text()[self._log_start:]:
            if self.process.poll() is not None:
                raise RuntimeError(f"bridge exited ({self.process.returncode}):\n{self.log_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not in the bridge log:\n{self.log_text()[-3000:]}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: the bridge dies at once, as in a crash or an OOM kill."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> None:
        """SIGTERM: the bridge drains (see --drain-grace, --drain-timeout) and exits."""
        self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
