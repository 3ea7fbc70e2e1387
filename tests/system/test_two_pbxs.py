"""One bridge, two real Asterisk 22 servers (each with the project's dialplan and manager.conf),
the bridge as its own process with ``--ami pbx1=... --ami pbx2=...``: a call on each PBX at the
same time gets its TRANSCRIPT and captions from its own PBX only, though both PBXs name their
channels alike (Local/play@test-caller-00000000;1 on each). In CI (CI=true) these tests fail
instead of skipping when no Asterisk can be had.
"""
from __future__ import annotations

from typing import Iterator

import pytest

from tests.asterisk_pbx import Asterisk, AsteriskUnavailable, Installation, manager_user_setting
from tests.support.ami_observer import AmiObserver
from tests.support.bridge_process import BridgeProcess
from tests.support.pbx_calls import (TEST_DIALPLAN, TESTER_USER, place_call, observe_as_tester,
                                     texts_of, unavailable)
from audiosocket_bridge.testing.ports import free_port
from whisper.evaluation import english_wer

NAMES = ("pbx1", "pbx2")
CALLS = {"pbx1": ("conf-getpin", "vm-goodbye"), "pbx2": ("vm-reachoper", "vm-goodbye")}


@pytest.fixture(scope="module")
def ami_ports() -> dict[str, int]:
    return {name: free_port() for name in NAMES}


@pytest.fixture(scope="module")
def bridge(tmp_path_factory, ami_ports) -> Iterator[BridgeProcess]:
    servers = [arg for name in NAMES for arg in ("--ami", f"{name}=127.0.0.1:{ami_ports[name]}")]
    process = BridgeProcess(tmp_path_factory.mktemp("two-pbxs") / "bridge", extra_args=servers,
                            ami_secret=manager_user_setting("transcriber", "secret"))
    yield process
    process.stop()


@pytest.fixture(scope="module")
def pbxs(tmp_path_factory, ami_ports, bridge) -> Iterator[dict[str, Asterisk]]:
    try:
        installation = Installation.find()
    except AsteriskUnavailable as error:
        unavailable(error)
    root = tmp_path_factory.mktemp("pbxs")
    started = {}
    try:
        for name in NAMES:
            started[name] = Asterisk(installation, root / name, ami_port=ami_ports[name],
                                     globals={"TRANSCRIBER": bridge.transcriber,
                                              "FASTAGI": bridge.fastagi},
                                     extra_dialplan=TEST_DIALPLAN, extra_manager=TESTER_USER)
            started[name].start()
        bridge.start()
        for name in NAMES:
            bridge.wait_for_log(f"(server {name},", 30)  # its AMI session is up
        yield started
    finally:
        bridge.stop()
        for asterisk in started.values():
            asterisk.stop()


@pytest.fixture(scope="module")
def observers(pbxs) -> Iterator[dict[str, AmiObserver]]:
    made = {name: observe_as_tester(pbx) for name, pbx in pbxs.items()}
    yield made
    for observer in made.values():
        observer.close()


def script(names) -> str:
    return "wait:1^" + "^wait:1^".join(f"play:{name}" for name in names) + "^wait:1.5"


def test_two_pbxs_on_one_bridge_each_call_back_to_its_own(pbxs, observers, bridge):
    calls = {name: place_call(observers[name], "transcribe-caller", "600", script(CALLS[name]))
             for name in NAMES}
    assert calls["pbx1"].channel == calls["pbx2"].channel  # the same name on both PBXs
    uuids = {name: call.wait_var("ID", 20).get("Value") for name, call in calls.items()}
    for name, call in calls.items():
        call.wait_var("TRANSCRIPT_STATUS", 90)  # h extension: FastAGI after the hangup
        heard = [m.get("Value") for m in call.var_sets("TRANSCRIPT")]
        assert heard, f"no TRANSCRIPT on {name}"
        assert english_wer([texts_of(*CALLS[name])], [heard[-1]]) < 0.3, (name, heard)
        other = calls["pbx2" if name == "pbx1" else "pbx1"]
        assert call.captions(uuids[name]), f"no final captions of its call on {name}"
        assert not other.captions(uuids[name]) and not other.captions(uuids[name], final=False)
    log = bridge.log_text()
    for name in NAMES:
        assert f"registered call {uuids[name]} on {calls[name].channel} of server {name}" in log
    assert "no AMI output" not in log
