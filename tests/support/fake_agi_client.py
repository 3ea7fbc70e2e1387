"""The Asterisk side of a FastAGI call, as res/res_agi.c speaks it.

Sends "agi_network: yes", "agi_network_script: <path?query>", the agi_*
environment in setup_env() order, agi_arg_N, and a blank line; then answers
each command line: SET VARIABLE -> "200 result=1", GET VARIABLE -> "200 result=1 (v)"
or "200 result=0", others -> "510 Invalid or unknown command". Arguments are
split like res_agi.c parse_args (blanks separate, quotes group, backslash
escapes). With `hangup_first`, it writes "HANGUP" before the first answer, as
Asterisk does when the channel hangs up during a FastAGI session.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import urlsplit

AGI_BUF_LEN = 2048


def parse_args(line: str) -> list[str]:
    """res_agi.c parse_args(): blanks split, "..." groups, backslash escapes one char."""
    args: list[str] = []
    current: Optional[list[str]] = None
    quoted = escaped = False
    for char in line:
        if escaped:
            current = (current or []) + [char]
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
            current = current or []
        elif char in " \t" and not quoted:
            if current is not None:
                args.append("".join(current))
                current = None
        else:
            current = (current or []) + [char]
    if current is not None:
        args.append("".join(current))
    return args


@dataclass
class AgiCall:
    """What one FastAGI invocation did to the channel."""

    variables: dict[str, str] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    too_long: int = 0


def environment(url: str, channel: str, uniqueid: str, args: tuple[str, ...]) -> list[str]:
    script = urlsplit(url).path.lstrip("/") + (f"?{urlsplit(url).query}" if urlsplit(url).query else "")
    lines = ["agi_network: yes", f"agi_network_script: {script}", f"agi_request: {url}",
             f"agi_channel: {channel}", "agi_language: en", f"agi_type: {channel.split('/')[0]}",
             f"agi_uniqueid: {uniqueid}", "agi_version: 22.4.0", "agi_callerid: 1001",
             "agi_calleridname: Alice", "agi_callingpres: 0", "agi_callingani2: 0",
             "agi_callington: 0", "agi_callingtns: 0", "agi_dnid: 600", "agi_rdnis: unknown",
             "agi_context: speech-ivr", "agi_extension: s", "agi_priority: 6",
             "agi_enhanced: 0.0", "agi_accountcode: ", "agi_threadid: 140212345678912"]
    lines += [f"agi_arg_{i}: {arg}" for i, arg in enumerate(args, start=1)]
    return lines


async def run_agi(host: str, port: int, url: str, *, args: tuple[str, ...] = (),
                  channel: str = "PJSIP/alice-00000001", uniqueid: str = "1718000000.1",
                  linkedid: str = "1718000000.0", preset: Optional[dict[str, str]] = None,
                  hangup_first: bool = False, timeout_s: float = 10.0,
                  local_host: Optional[str] = None) -> AgiCall:
    """Run one AGI(agi://...) application call against the server, from `local_host` (e.g.
    127.0.0.2) when given; returns its effects."""
    call = AgiCall(variables={"CHANNEL(linkedid)": linkedid, **(preset or {})})
    local = {"local_addr": (local_host, 0)} if local_host else {}
    reader, writer = await asyncio.open_connection(host, port, **local)
    try:
        writer.write(("\n".join(environment(url, channel, uniqueid, args)) + "\n\n").encode())
        await writer.drain()
        if hangup_first:
            writer.write(b"HANGUP\n")
        await asyncio.wait_for(_answer_commands(reader, writer, call), timeout_s)
    finally:
        writer.close()
    return call


async def _answer_commands(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           call: AgiCall) -> None:
    while True:
        raw = await reader.readline()
        if not raw:
            return  # the script ended: Asterisk continues in the dialplan
        if len(raw) > AGI_BUF_LEN:
            call.too_long += 1
        line = raw.decode("utf-8").rstrip("\n")
        call.commands.append(line)
        writer.write((_answer(line, call) + "\n").encode())
        await writer.drain()


def _answer(line: str, call: AgiCall) -> str:
    words = parse_args(line)
    verb = " ".join(words[:2]).upper()
    if verb == "SET VARIABLE" and len(words) == 4:
        call.variables[words[2]] = words[3]
        return "200 result=1"
    if verb == "GET VARIABLE" and len(words) == 3:
        value = call.variables.get(words[2])
        return "200 result=0" if value is None else f"200 result=1 ({value})"
    return "510 Invalid or unknown command"
