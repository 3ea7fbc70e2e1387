"""FastAGI wire format (pure: no sockets).

What Asterisk (res/res_agi.c) sends on a FastAGI connection: "agi_network: yes",
"agi_network_script: <path after host:port/>", then the agi_* environment
(agi_request, agi_channel, agi_uniqueid, ..., agi_arg_1..N), each "key: value\\n",
and a blank line. Each command is one line (read into a 2048-byte buffer,
AGI_BUF_LEN); each answer is "200 result=<n> [(data)]". When the channel hangs
up, Asterisk writes "HANGUP" on its own line and later commands get 511.
Arguments are split on blanks; double quotes group and a backslash escapes
the next character (res_agi.c parse_args).

Parameters: Asterisk passes the query of agi://host/script?query through
untouched (agi_network_script: "script?query"), so its decoding is ours to
define, and we use this rule (parse_query):
  * pairs are separated by "&" and a name from its value by the first "=";
    a name without "=" gets the empty value; empty pairs are skipped;
  * "%xx" escapes are decoded (UTF-8) in names and values, so "%26" is "&",
    "%3D" is "=", "%25" is "%", "%20" is a space and "%2C" a comma;
  * "+" is a literal plus, never a space (prompt=C++ stays "C++");
  * a later duplicate name wins.
Write a "," in the query as %2C: in AGI(agi://...,arg1,...) the dialplan
splits the whole argument list on commas before Asterisk connects. Each
agi_arg_N "name=value" is taken literally (no %-decoding) and wins over the query.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import unquote, urlsplit

AGI_MAX_COMMAND_BYTES = 2048  # AGI_BUF_LEN, including the newline
HANGUP_LINE = "HANGUP"

_RESPONSE = re.compile(r"^(?P<code>\d{3})[ -]?(?:result=(?P<result>-?\d+))?\s*(?:\((?P<data>.*)\))?")


@dataclass(frozen=True)
class AgiRequest:
    """One FastAGI invocation: the script name and its parameters."""

    env: dict[str, str]
    script: str  # e.g. "transcript"
    params: dict[str, str] = field(default_factory=dict)  # query string, then agi_arg_N "k=v"

    @property
    def channel(self) -> Optional[str]:
        return self.env.get("agi_channel") or None

    @property
    def uniqueid(self) -> Optional[str]:
        return self.env.get("agi_uniqueid") or None


@dataclass(frozen=True)
class AgiResponse:
    code: int
    result: Optional[int]
    data: str
    line: str

    @property
    def ok(self) -> bool:
        return self.code == 200


def parse_env_line(line: str) -> Optional[tuple[str, str]]:
    """("agi_channel", "PJSIP/a-1") from "agi_channel: PJSIP/a-1"; None for a malformed line."""
    key, sep, value = line.strip("\r\n").partition(":")
    if not sep or not key.strip():
        return None
    return key.strip(), value.strip()


def parse_request(env: dict[str, str]) -> AgiRequest:
    """Script and parameters from agi_network_script (or agi_request) and agi_arg_N."""
    target = env.get("agi_network_script") or urlsplit(env.get("agi_request", "")).path
    path, _, query = target.partition("?")
    params = parse_query(query)
    for key in sorted((k for k in env if k.startswith("agi_arg_")),
                      key=lambda k: int(k[8:]) if k[8:].isdigit() else 0):
        name, sep, value = env[key].partition("=")
        if sep and name.strip():
            params[name.strip()] = value
    return AgiRequest(env=env, script=path.strip("/").lower(), params=params)


def parse_query(query: str) -> dict[str, str]:
    """Parameters of an agi:// query by the rule in the module docstring ("+" stays "+")."""
    params: dict[str, str] = {}
    for pair in query.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        params[unquote(name)] = unquote(value)
    return params


def quote_arg(value: object) -> str:
    """One command argument: CR/LF removed, backslashes and quotes escaped, double-quoted."""
    text = str(value).replace("\r", " ").replace("\n", " ")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def command_line(*words: object) -> bytes:
    """Encode a command; raises ValueError beyond AGI_MAX_COMMAND_BYTES."""
    line = (" ".join(str(w) for w in words) + "\n").encode("utf-8")
    if len(line) > AGI_MAX_COMMAND_BYTES:
        raise ValueError(f"AGI command is {len(line)} bytes (limit {AGI_MAX_COMMAND_BYTES})")
    return line


def set_variable(name: str, value: object) -> bytes:
    """SET VARIABLE, with the value truncated (on a character boundary) to fit one line."""
    overhead = len(command_line("SET VARIABLE", quote_arg(name), '""'))
    text = _fit_quoted(str(value), AGI_MAX_COMMAND_BYTES - overhead)
    return command_line("SET VARIABLE", quote_arg(name), quote_arg(text))


def _fit_quoted(text: str, budget_bytes: int) -> str:
    """Longest prefix whose quote_arg() body fits in `budget_bytes`."""
    used = 0
    for index, char in enumerate(text):
        used += len(char.encode("utf-8")) + (char in '\\"')
        if used > budget_bytes:
            return text[:index]
    return text


def get_variable(name: str) -> bytes:
    return command_line("GET VARIABLE", quote_arg(name))


def parse_response(line: str) -> AgiResponse:
    text = line.strip("\r\n")
    match = _RESPONSE.match(text)
    if not match:
        return AgiResponse(code=0, result=None, data=text, line=text)
    result = match.group("result")
    return AgiResponse(code=int(match.group("code")),
                       result=int(result) if result is not None else None,
                       data=match.group("data") or "", line=text)
