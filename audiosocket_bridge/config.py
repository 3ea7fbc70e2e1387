"""Bridge settings from flags, AUDIOSOCKET_* environment variables and an INI file.

Precedence: command-line flag > environment > config file > default.
"""
from __future__ import annotations

import configparser
from dataclasses import dataclass, fields
from typing import Any, Mapping, Optional

from whisper.vocabulary import parse_vocabulary

from .ami_servers import (SECTION_PREFIX, AmiServerSettings, merge_servers, parse_server_list,
                          section_server)
from .outputs.storage import DEFAULT_STORAGE_URL
from .outputs.webhook_policy import check_url, shown_url
from .values import parse_bool

ENV_PREFIX = "AUDIOSOCKET_"
FILE_SECTION = "bridge"


@dataclass(frozen=True)
class BridgeConfig:
    listen: str = "127.0.0.1:8300"
    model: str = "tiny.en"
    language: Optional[str] = None
    vocabulary: Optional[str] = None  # phrases boosted in every call (whisper.vocabulary): "Zorblax|Okonkwo"
    device: Optional[str] = None
    quantize: bool = False  # the decoder's linear layers in int8 (CPU): faster decoding, a little less accurate
    storage: str = DEFAULT_STORAGE_URL
    log_level: str = "INFO"
    max_calls: int = 100
    max_frame_bytes: int = 32768
    idle_timeout: float = 30.0
    raw: bool = False
    partials: bool = True
    ami_host: Optional[str] = None
    ami_port: int = 5038
    ami_user: str = "transcriber"
    ami_secret: Optional[str] = None
    ami_secret_file: Optional[str] = None  # read when ami_secret is not given
    ami: tuple[str, ...] = ()  # more AMI servers: "NAME=HOST[:PORT]" (see ami_servers.py)
    # the named servers with their credentials ([ami NAME] sections, --ami, the environment);
    # made by resolve(), not a setting of its own
    ami_servers: tuple[AmiServerSettings, ...] = ()
    agi_listen: Optional[str] = None
    metrics_listen: Optional[str] = None
    registration_wait: float = 1.0
    shutdown_deadline: float = 30.0
    drain_grace: float = 3.0  # with --metrics-listen: SIGTERM -> /healthz fails, still accepting
    drain_timeout: float = 0.0  # then: wait this long for calls to end by themselves
    bridge_id: Optional[str] = None  # default: hostname:port (bridges sharing a database)
    keepalive: float = 0.5
    engine_process: bool = True  # the model and scheduler in a child process (off the GIL)
    engine_workers: int = 0  # engine processes (0: one per core, one-threaded, at most 8; 1 on a GPU)
    webhook_url: Optional[str] = None  # POST each ended call's JSON transcript here
    webhook_secret: Optional[str] = None  # HMAC-SHA256 key signing the POSTs
    webhook_secret_file: Optional[str] = None  # read when webhook_secret is not given
    webhook_timeout: float = 10.0
    webhook_max_age: float = 86400.0  # give a delivery up this long after its call ended

    def __post_init__(self) -> None:
        if self.webhook_url:
            check_url(self.webhook_url)
        if self.vocabulary:
            parse_vocabulary(self.vocabulary)  # a bad one is refused at start, with the rule

    def __repr__(self) -> str:  # secrets must never reach a log
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in _SECRETS:
            if shown[name]:
                shown[name] = "***"
        if shown["webhook_url"]:
            shown["webhook_url"] = shown_url(shown["webhook_url"])
        return "BridgeConfig(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"


_DERIVED = {"ami_servers"}
_SECRETS = ("ami_secret", "webhook_secret")


def _field_types() -> dict[str, type]:
    """The settings a flag, the environment or [bridge] can give, and their types."""
    defaults = BridgeConfig()
    types = {}
    for f in fields(BridgeConfig):
        if f.name in _DERIVED:
            continue
        value = getattr(defaults, f.name)
        types[f.name] = type(value) if value is not None else str
    return types


def parse_value(name: str, text: str) -> Any:
    kind = _field_types()[name]
    if kind is bool:
        try:
            value = parse_bool(text)
        except ValueError:
            value = None
        if value is None:
            raise ValueError(f"{name}: expected a boolean, got {text!r}")
        return value
    if kind is tuple:
        return parse_server_list(text)
    return kind(text.strip())


def from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    found = {}
    for name in _field_types():
        key = ENV_PREFIX + name.upper()
        if environ.get(key, "") != "":
            found[name] = parse_value(name, environ[key])
    return found


def _read_ini(path: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)  # a '%' in a secret stays a '%'
    with open(path, encoding="utf-8") as handle:
        parser.read_file(handle)
    return parser


def servers_from_file(parser: configparser.ConfigParser, path: str) -> list[AmiServerSettings]:
    """The ``[ami NAME]`` sections."""
    return [section_server(name, parser.items(name), path) for name in parser.sections()
            if name.startswith(SECTION_PREFIX)]


def from_file(parser: configparser.ConfigParser, path: str) -> dict[str, Any]:
    """The ``[bridge]`` section."""
    if not parser.has_section(FILE_SECTION):
        return {}
    found = {}
    for key, value in parser.items(FILE_SECTION):
        name = key.replace("-", "_")
        if name not in _field_types():
            raise ValueError(f"{path}: unknown setting {key!r} in [{FILE_SECTION}]")
        found[name] = parse_value(name, value)
    return found


def resolve(flags: Mapping[str, Any], environ: Mapping[str, str],
            config_file: Optional[str] = None) -> BridgeConfig:
    """Merge the sources; `flags` holds only options given on the command line."""
    merged: dict[str, Any] = {}
    sections: list[AmiServerSettings] = []
    if config_file:
        parser = _read_ini(config_file)
        merged.update(from_file(parser, config_file))
        sections = servers_from_file(parser, config_file)
    merged.update(from_env(environ))
    merged.update({k: v for k, v in flags.items() if v is not None})
    merged["ami"] = tuple(merged.get("ami", ()))
    merged["ami_servers"] = merge_servers(sections, merged.get("ami", ()), environ)
    return BridgeConfig(**merged)


def read_secret(given: Optional[str], path: Optional[str]) -> str:
    """A secret given as such, else the contents of its file, else empty."""
    if given or not path:
        return given or ""
    with open(path, encoding="utf-8") as handle:
        return handle.read().strip()


def ami_secret(config: BridgeConfig) -> str:
    return read_secret(config.ami_secret, config.ami_secret_file)


def webhook_secret(config: BridgeConfig) -> str:
    return read_secret(config.webhook_secret, config.webhook_secret_file)


def split_host_port(text: str, default_port: int) -> tuple[str, int]:
    """'host:port', ':port', 'host', '[v6]:port', '[v6]' or a bare IPv6 address ('::1')."""
    host, sep, port = text.rpartition(":")
    if not sep or "]" in port or (host.count(":") and not host.startswith("[")):
        return text.strip("[]"), default_port  # no port, or an IPv6 address without brackets
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"invalid address {text!r}: the port must be 1-65535 (IPv6 with a port: [::1]:8300)")
    return (host.strip("[]") or "127.0.0.1"), int(port)
