"""openai-whisper's own test suite (tests/openai_whisper, unmodified) passes against our package."""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import torch

import whisper
from tests.support.fixtures import shared_fixture
from tests.support.openai_whisper_plugin import NO_CUDA_REASON

ROOT = Path(__file__).resolve().parents[2]
SUITE = Path(__file__).resolve().parents[1] / "openai_whisper"


def recorded_hashes() -> dict:
    lines = re.findall(r"^ {4}([0-9a-f]{64})  (\S+)$", (SUITE / "README.md").read_text(), re.MULTILINE)
    return {name: digest for digest, name in lines}


def test_the_vendored_files_are_unmodified():
    hashes = recorded_hashes()
    assert set(hashes) == {p.name for p in SUITE.glob("test_*.py")} | {"LICENSE"}
    for name, digest in hashes.items():
        assert hashlib.sha256((SUITE / name).read_bytes()).hexdigest() == digest, name


def run_suite(folder: Path) -> ET.Element:
    for test_file in SUITE.glob("test_*.py"):
        shutil.copy(test_file, folder)
    shutil.copy(shared_fixture("jfk.flac"), folder / "jfk.flac")
    (folder / "pytest.ini").write_text("[pytest]\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.support.openai_whisper_plugin",
         "-c", str(folder / "pytest.ini"), "--rootdir", str(folder), f"--junitxml={folder / 'report.xml'}", str(folder)],
        cwd=folder, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    return ET.parse(folder / "report.xml").getroot()


def test_openai_whisper_suite_passes(tmp_path):
    cases = run_suite(tmp_path).iter("testcase")
    outcomes = {f"{c.get('classname')}.{c.get('name')}": c for c in cases}
    assert len(outcomes) >= 27
    skipped = {name: c.find("skipped").get("message", "") for name, c in outcomes.items() if c.find("skipped") is not None}
    assert all(NO_CUDA_REASON in reason for reason in skipped.values()), skipped
    assert len(skipped) == (0 if torch.cuda.is_available() else 8)  # the requires_cuda ones only
    transcribed = sorted(re.sub(r".*\[(.*)\]", r"\1", n) for n in outcomes if "test_transcribe[" in n)
    assert transcribed == sorted(whisper.available_models()) and "tiny.en" in transcribed
