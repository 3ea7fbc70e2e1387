"""Calls on a real Asterisk without phones, for the end-to-end tests: a test dialplan whose
``Local/play@test-caller`` plays a script of Debian's prompts into the extension under test, an
AMI user for the tests, and placing and watching such a call through AMI.

A script is ``wait:S``, ``play:NAME``, ``dtmf:DIGITS`` steps joined by ``^``.
"""
from __future__ import annotations

import os
import uuid as uuid_lib
from dataclasses import dataclass

import pytest

from .ami_observer import AmiObserver, Message
from audiosocket_bridge.testing.prompts import prompt

TESTER_SECRET = "tester-secret"
TEST_DIALPLAN = r"""
[test-caller]
exten => play,1,Answer()
 same => n,Set(STEP_NO=1)
 same => n(next),Set(STEP=${CUT(SCRIPT,^,${STEP_NO})})
 same => n,GotoIf($["${STEP}" = ""]?done)
 same => n,Set(ARG=${CUT(STEP,:,2)})
 same => n,Goto(${CUT(STEP,:,1)})
 same => n(wait),Wait(${ARG})
 same => n,Goto(step)
 same => n(play),Playback(${ARG})
 same => n,Goto(step)
 same => n(dtmf),SendDTMF(${ARG})
 same => n(step),Set(STEP_NO=$[${STEP_NO} + 1])
 same => n,Goto(next)
 same => n(done),Hangup()

; The callee of the two-party example (Dial's PJSIP target replaced by this Local channel).
[test-callee]
exten => _X.,1,Answer()
 same => n,Set(SCRIPT=${CALLEE_SCRIPT})
 same => n,Goto(test-caller,play,2)
"""
TESTER_USER = f"""
[tester]
secret = {TESTER_SECRET}
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.255
read = all
write = all
"""
def unavailable(error: Exception) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"real-Asterisk tests cannot run in CI: {error}")
    pytest.skip(f"no Asterisk: {error}")


@dataclass
class PlacedCall:
    ami: AmiObserver
    channel: str  # the ;1 half, running the extension under test
    player: str  # the ;2 half, playing the script
    mark: int  # index of the first AMI message of this call

    def var_sets(self, name: str, channel: str = "") -> list[Message]:
        return self.ami.matching(lambda m: m.event == "VarSet" and m.get("Variable") == name
                                 and m.get("Channel") == (channel or self.channel), self.mark)

    def wait_var(self, name: str, timeout_s: float = 60.0, value: str = "") -> Message:
        return self.ami.wait_for(lambda m: m.event == "VarSet" and m.get("Variable") == name
                                 and m.get("Channel") == self.channel
                                 and (not value or m.get("Value") == value), timeout_s, self.mark)

    def wait_hangup(self, timeout_s: float = 60.0) -> Message:
        return self.ami.wait_for(lambda m: m.event == "Hangup" and m.get("Channel") == self.channel,
                                 timeout_s, self.mark)

    def reached(self, context: str) -> list[Message]:
        return self.ami.matching(lambda m: m.event == "Newexten" and m.get("Channel") == self.channel
                                 and m.get("Context") == context, self.mark)

    def captions(self, uuid: str, final: bool = True) -> list[Message]:
        return self.ami.matching(lambda m: m.event == "UserEvent" and m.get("UserEvent") == "Transcript"
                                 and m.get("Uuid") == uuid and m.get("Final") == ("1" if final else "0"),
                                 self.mark)


def place_call(ami: AmiObserver, context: str, exten: str, script: str, **variables: str) -> PlacedCall:
    tag = uuid_lib.uuid4().hex[:12]
    mark = ami.mark()
    ami.originate("Local/play@test-caller", context, exten, {"SCRIPT": script, "TEST_TAG": tag, **variables})
    tagged = [ami.wait_for(lambda m, end=end: m.event == "VarSet" and m.get("Variable") == "TEST_TAG"
                           and m.get("Value") == tag and m.get("Channel").endswith(end), 20, mark)
              for end in (";1", ";2")]
    return PlacedCall(ami, tagged[0].get("Channel"), tagged[1].get("Channel"), mark)


def texts_of(*names: str) -> str:
    return " ".join(prompt(name).text for name in names)


def observe_as_tester(pbx) -> AmiObserver:
    """An AMI session as the tests' own user (read/write all) on a running Asterisk."""
    return AmiObserver(pbx.ami_port, "tester", TESTER_SECRET)


def pbx_for_tests(workdir, ami_port: int, global_vars: dict, **kwargs):
    """An Asterisk (not started) with the project's dialplan, the test dialplan and the tests'
    AMI user, `global_vars` overriding [globals]; skips (fails in CI) when none can be had."""
    from ..asterisk_pbx import Asterisk, AsteriskUnavailable, Installation

    try:
        installation = Installation.find()
    except AsteriskUnavailable as error:
        unavailable(error)
    return Asterisk(installation, workdir / "asterisk", ami_port=ami_port, globals=global_vars,
                    extra_dialplan=TEST_DIALPLAN, extra_manager=TESTER_USER, **kwargs)


def running(pbx, bridge):
    """For a fixture: the PBX started, then the bridge (it logs in to the PBX's AMI); yields the
    PBX, stops both."""
    pbx.start()
    bridge.start()
    yield pbx
    bridge.stop()
    pbx.stop()


def observed(pbx):
    """The tests' AMI session on `pbx`, for a fixture: yields it, closes it."""
    observer = observe_as_tester(pbx)
    yield observer
    observer.close()
