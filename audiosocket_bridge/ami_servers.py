"""Settings of the AMI servers (PBXs) one bridge talks to, from flags, the INI file and the
environment. Pure: no sockets.

A server has a name, used in logs, metrics (label ``server``) and registrations (a call's Setvars
and captions go to the server whose dialplan announced it):
  * ``--ami-host HOST`` (with --ami-port/--ami-user/--ami-secret...) is the server ``default``;
  * ``--ami NAME=HOST[:PORT]`` (repeatable; AUDIOSOCKET_AMI or ``ami =`` in [bridge]: a comma
    separated list) adds one;
  * an INI section ``[ami NAME]`` with ``host``, ``port``, ``user``, ``secret`` or
    ``secret-file`` adds one or gives credentials to the ``--ami NAME=...`` of that name.
A named server's secret: AUDIOSOCKET_AMI_SECRET_<NAME> (upper case, other characters as ``_``),
else its section's ``secret``, else its ``secret-file``, else the bridge-wide AMI secret.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping, Optional

from .values import split_host_port

DEFAULT_SERVER = "default"  # the name of the server given by --ami-host
DEFAULT_AMI_PORT = 5038
SECTION_PREFIX = "ami "
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SECTION_KEYS = {"host", "port", "user", "secret", "secret_file"}


@dataclass(frozen=True)
class AmiServerSettings:
    name: str
    host: Optional[str] = None
    port: int = DEFAULT_AMI_PORT
    user: Optional[str] = None  # None: the bridge's --ami-user
    secret: Optional[str] = field(default=None, repr=False)  # never shown
    secret_file: Optional[str] = None


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"invalid AMI server name {name!r}: use letters, digits, '_', '.', '-'")
    return name


def parse_server_flag(text: str) -> tuple[str, str, Optional[int]]:
    """'NAME=HOST[:PORT]' (an IPv6 host in brackets: 'pbx=[::1]:5038') -> (name, host, port or
    None when not given)."""
    name, sep, address = text.partition("=")
    if not sep or not address.strip():
        raise ValueError(f"--ami {text!r}: expected NAME=HOST[:PORT]")
    host, port = split_host_port(address.strip(), 0)
    return check_name(name.strip()), host, port or None


def parse_server_list(text: str) -> tuple[str, ...]:
    """The environment's / [bridge] file's form of --ami: 'a=h1:5038, b=h2'."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def section_server(section: str, items: Iterable[tuple[str, str]], source: str) -> AmiServerSettings:
    """An ``[ami NAME]`` section of the INI file."""
    name = check_name(section[len(SECTION_PREFIX):].strip())
    values: dict = {}
    for key, value in items:
        key = key.replace("-", "_")
        if key not in _SECTION_KEYS:
            raise ValueError(f"{source}: unknown setting {key!r} in [{section}] "
                             f"(use {', '.join(sorted(_SECTION_KEYS))})")
        values[key] = value.strip()
    if "port" in values:
        if not values["port"].isdigit():
            raise ValueError(f"{source}: [{section}] port must be a number, got {values['port']!r}")
        values["port"] = int(values["port"])
    return AmiServerSettings(name, **values)


def merge_servers(sections: Iterable[AmiServerSettings], flags: Iterable[str],
                  environ: Mapping[str, str]) -> tuple[AmiServerSettings, ...]:
    """The named servers in order (sections, then flags' new names); a flag sets the host and
    port of a section of its name. The environment's secrets are applied last."""
    servers: dict[str, AmiServerSettings] = {}
    for server in sections:
        servers[server.name] = server
    for text in flags:
        name, host, port = parse_server_flag(text)
        known = servers.get(name, AmiServerSettings(name))
        servers[name] = replace(known, host=host, port=port or known.port)
    for name, server in servers.items():
        if not server.host:
            raise ValueError(f"AMI server {name!r} has no host (give host = in [ami {name}] "
                             f"or --ami {name}=HOST[:PORT])")
        secret = environ.get(secret_env_name(name))
        if secret:
            servers[name] = replace(server, secret=secret)
    return tuple(servers.values())


def secret_env_name(name: str) -> str:
    return "AUDIOSOCKET_AMI_SECRET_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def unique_names(names: Iterable[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"AMI server {name!r} is given twice (--ami-host is the server "
                             f"{DEFAULT_SERVER!r})")
        seen.add(name)
