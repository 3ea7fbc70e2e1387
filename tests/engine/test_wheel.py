"""The project as a user installs it: a wheel built from this tree, installed (not editable) in a
fresh venv, its ``whisper`` and ``audiosocket-bridge`` commands run from outside the checkout.

The fresh venv gets only the wheel. Its third-party packages (torch, numpy, tiktoken, the model
packages) are the test venv's, reached through a .pth line, so nothing is downloaded. That cannot
lend it this project's code: .pth files inside a folder named by a .pth line are not run, so the
editable install's import hook stays off, and the tests assert that the modules and vocabularies
are the wheel's. In CI (CI=true) the tests fail instead of skipping when they cannot run.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

from audiosocket_bridge.testing.audiosocket_client import AudioSocketClient
from audiosocket_bridge.testing.ports import free_port, wait_listening
from audiosocket_bridge.testing.prompts import SOUNDS_DIR, read_slin
from whisper.evaluation import normalize_english

pytestmark = pytest.mark.wheel

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("whisper", "audiosocket_bridge")
VOCABULARIES = ("gpt2", "multilingual")
GOODBYE_WAV = SOUNDS_DIR / "vm-goodbye.wav"
# What a fresh clone lacks (.gitignore), so that a stale build/ or egg-info cannot supply a file.
NOT_IN_A_CLONE = (".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                  ".hypothesis", "*.db", "*.db-wal", "*.db-shm")  # fmt: skip


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    site_packages: Path

    def command(self, name: str) -> str:
        return str(self.venv / "bin" / name)


def cannot_run(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"the installed-wheel tests cannot run in CI: {reason}")
    pytest.skip(reason)


def clean_env() -> Dict[str, str]:
    """The environment without anything that would point Python back at the checkout or the test venv."""
    dropped = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV"}
    return {**{k: v for k, v in os.environ.items() if k not in dropped}, "PYTHONWARNINGS": "ignore"}


def run(args: List[str], cwd: Path, timeout_s: float) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout_s)
    assert done.returncode == 0, f"{args[:4]} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def build_wheel(work: Path) -> Path:
    """``pip wheel`` on a copy of the tree as a clone has it (pip builds in the source folder)."""
    source, dist = work / "source", work / "dist"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*NOT_IN_A_CLONE))
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(dist), str(source)], cwd=work, timeout_s=180)  # fmt: skip
    (wheel,) = dist.glob("*.whl")
    return wheel


def reused_site_packages() -> List[str]:
    paths = sysconfig.get_paths()
    return sorted({paths["purelib"], paths["platlib"]})


def install_wheel(wheel: Path, venv: Path) -> Path:
    """A venv with no pip and no packages, the wheel installed into it by this venv's pip."""
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=venv.parent, timeout_s=60)
    python = str(venv / "bin" / "python")
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", str(wheel)],
        cwd=venv.parent, timeout_s=120)  # fmt: skip
    site_packages = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             cwd=venv.parent, timeout_s=30).stdout.strip())  # fmt: skip
    (site_packages / "_test_reused_dependencies.pth").write_text("\n".join(reused_site_packages()) + "\n")
    return site_packages


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    if not GOODBYE_WAV.exists():
        cannot_run(f"{GOODBYE_WAV} is missing (apt-get install asterisk-core-sounds-en-wav)")
    work = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(work)
    venv = work / "venv"
    return Installed(wheel, venv, install_wheel(wheel, venv))


def source_modules() -> List[str]:
    return sorted(str(p.relative_to(REPO)) for package in PACKAGES for p in (REPO / package).rglob("*.py"))


def test_wheel_holds_every_module_and_the_vocabularies_inside_the_package(installed):
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    assert {f"whisper/assets/{name}.tiktoken" for name in VOCABULARIES} <= names
    assert "whisper/normalizers/english_spelling.json" in names
    assert {f"audiosocket_bridge/web/{name}" for name in ("index.html", "app.js", "style.css",
                                                         "caption-stream.schema.json")} <= names
    assert set(source_modules()) - names == set()  # a subpackage missing from setup.cfg's list shows here
    assert not any(name.startswith("assets/") for name in names)  # no top-level "assets" package


def test_code_and_vocabularies_are_imported_from_the_installed_wheel(installed, tmp_path):
    probe = (
        "import json, audiosocket_bridge, whisper, whisper.tokenizer as t; print(json.dumps("
        "[whisper.__file__, audiosocket_bridge.__file__] + [str(t.vocabulary_path(n)) for n in %r]))"
        % (VOCABULARIES,)
    )
    paths = json.loads(run([installed.command("python"), "-c", probe], cwd=tmp_path, timeout_s=120).stdout)
    assert all(Path(p).is_relative_to(installed.site_packages) for p in paths), paths


def test_installed_whisper_command_transcribes_a_prompt(installed, tmp_path):
    run([installed.command("whisper"), str(GOODBYE_WAV), "--model", "tiny.en", "--output_format", "txt",
         "--output_dir", "out"], cwd=tmp_path, timeout_s=180)  # fmt: skip
    assert normalize_english((tmp_path / "out" / "vm-goodbye.txt").read_text()) == "goodbye"


async def call_then_sigterm(port: int, process: subprocess.Popen) -> str:
    """One call saying "Goodbye", then SIGTERM while it is still connected; returns its UUID."""
    client = await AudioSocketClient("127.0.0.1", port).connect()
    await client.send_audio(read_slin(GOODBYE_WAV), 8000, realtime=True)
    await client.send_silence(0.5, realtime=True)
    process.send_signal(signal.SIGTERM)
    await client.wait_server_end(timeout_s=30)
    await client.close()
    return client.call_uuid


@pytest.fixture
def bridge(installed, tmp_path) -> Iterator[Tuple[int, subprocess.Popen]]:
    port = free_port()
    args = [installed.command("audiosocket-bridge"), "--listen", f"127.0.0.1:{port}",
            "--storage", f"sqlite:///{tmp_path / 'calls.db'}", "--log-level", "DEBUG"]  # fmt: skip
    process = subprocess.Popen(args, cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        yield port, process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_installed_bridge_listens_transcribes_a_call_and_stops_on_sigterm(bridge):
    port, process = bridge
    wait_listening(port, process)
    call_uuid = asyncio.run(call_then_sigterm(port, process))
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert call_uuid in output and "goodbye" in output.lower(), output  # transcripts: DEBUG only
