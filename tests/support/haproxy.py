"""Debian's HAProxy running deploy/haproxy.cfg as shipped, only its addresses replaced (each text
exactly once, so that the test fails when the shipped file changes under it)."""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Dict, Optional

import pytest

from ..asterisk_pbx import REPO
from audiosocket_bridge.testing.ports import wait_listening

SHIPPED_CONFIG = REPO / "deploy" / "haproxy.cfg"


def substituted(text: str, substitutions: Dict[str, str]) -> str:
    for old, new in substitutions.items():
        if text.count(old) != 1:
            raise AssertionError(f"{old!r} is in {SHIPPED_CONFIG} {text.count(old)} times, not once")
        text = text.replace(old, new)
    return text


class HAProxy:
    def __init__(self, workdir: Path, substitutions: Dict[str, str], ports: tuple[int, ...]) -> None:
        self.config_path = workdir / "haproxy.cfg"
        self.log_path = workdir / "haproxy.log"
        self.ports = ports  # the fronts it must listen on
        self.config_path.write_text(substituted(SHIPPED_CONFIG.read_text(), substitutions))
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> "HAProxy":
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(binary).exists():
            pytest.fail("haproxy is not installed (Debian package haproxy; the README's test "
                        "command installs it)")
        checked = subprocess.run([binary, "-c", "-f", str(self.config_path)], capture_output=True,
                                 text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen([binary, "-db", "-f", str(self.config_path)],
                                            stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        for port in self.ports:
            wait_listening(port, self.process, 20)
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, needle: str, start: int = 0, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while needle not in self.log_text()[start:]:
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not in the HAProxy log:\n{self.log_text()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
