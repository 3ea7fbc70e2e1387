"""Bridge settings from flags, AUDIOSOCKET_* environment variables and an INI file.

Precedence: command-line flag > environment > config file > default.
"""
from __future__ import annotations

import configparser
from dataclasses import dataclass, fields
from typing import Any, Mapping, Optional

from whisper.streaming.options import EngineOptions, parse_settings, with_options
from whisper.vocabulary import parse_vocabulary

from .ami_servers import (SECTION_PREFIX, AmiServerSettings, merge_servers, parse_server_list,
                          section_server)
from .outputs.storage import DEFAULT_STORAGE_URL
from .access import parse_networks
from .logsafe import shown_url
from .redaction import check_policy
from .outputs.webhook_policy import check_url
from .values import parse_bool

ENV_PREFIX = "AUDIOSOCKET_"
FILE_SECTION = "bridge"
ENGINE_SECTION = "engine"  # [engine]: one dotted engine option a key (whisper.streaming.options)


@dataclass(frozen=True)
class BridgeConfig:
    listen: str = "127.0.0.1:8300"
    model: str = "tiny.en"
    language: Optional[str] = None
    vocabulary: Optional[str] = None  # phrases boosted in every call (whisper.vocabulary): "Zorblax|Okonkwo"
    device: Optional[str] = None
    quantize: bool = False  # the decoder's linear layers in int8 (CPU): faster decoding, a little less accurate
    storage: str = DEFAULT_STORAGE_URL
    storage_password_file: Optional[str] = None  # PostgreSQL's password (else PGPASSWORD/PGPASSFILE)
    storage_wait: float = 30.0  # at start: how long to wait for a database that is not up yet
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
    # access.py: who may connect (default: loopback and the AMI hosts)
    allow: tuple[str, ...] = ()  # AudioSocket peers: CIDRs, addresses, loopback, any
    agi_allow: tuple[str, ...] = ()  # FastAGI peers
    agi_secret: Optional[str] = None  # FastAGI requests must carry secret=... when set
    agi_secret_file: Optional[str] = None
    handshake_timeout: float = 5.0  # a connection must send its UUID within this many seconds
    redact: str = "pci"  # redaction.py: off | pci | pii (a call's own Redact wins)
    retention_days: float = 0.0  # delete calls ended longer ago than this (0: keep forever)
    http_token_file: Optional[str] = None  # the bearer token for transcripts over HTTP (captions)
    http_no_auth: bool = False  # transcripts over HTTP readable by anyone reaching the port
    http_max_connections: int = 256
    alert: tuple[str, ...] = ()  # phrases, or re:PATTERN, raising alerts (outputs/alerts.py)
    # storage writes the database cannot take yet are kept here (outputs/spool.py); default:
    # systemd's StateDirectory, else the SQLite file's folder, else the working directory
    spool_dir: Optional[str] = None
    # the engine's options as NAME=VALUE ("endpoint.trailing_silence_s=0.8"), in the order of their
    # sources: the [engine] section, AUDIOSOCKET_ENGINE_OPTIONS, --engine-option; the last one wins
    engine_options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.webhook_url:
            check_url(self.webhook_url)
        check_policy(self.redact)
        if self.retention_days < 0:
            raise ValueError(f"retention_days: must be 0 (keep forever) or more, got {self.retention_days:g}")
        parse_networks(self.allow + self.agi_allow)  # a bad entry is refused at start, not at a call
        if self.alert:
            from .outputs.alerts import parse_rules
            parse_rules(self.alert)
        if self.vocabulary:
            parse_vocabulary(self.vocabulary)  # a bad one is refused at start, with the rule
        engine_options(self)  # an unknown or bad engine option is refused at start

    def __repr__(self) -> str:  # secrets must never reach a log
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in _SECRETS:
            if shown[name]:
                shown[name] = "***"
        for name in ("webhook_url", "storage"):
            if shown[name]:
                shown[name] = shown_url(shown[name])
        return "BridgeConfig(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"


def engine_options(config: BridgeConfig) -> EngineOptions:
    return with_options(EngineOptions(), parse_settings(config.engine_options))


_DERIVED = {"ami_servers"}
_SECRETS = ("ami_secret", "webhook_secret", "agi_secret")


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
    if kind is tuple and name == "alert":  # one rule a line (a pattern may hold any character)
        return tuple(line.strip() for line in text.splitlines() if line.strip())
    if kind is tuple and name == "engine_options":  # NAME=VALUE;NAME=VALUE or one a line
        return tuple(part.strip() for part in text.replace("\n", ";").split(";") if part.strip())
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


def engine_from_file(parser: configparser.ConfigParser) -> tuple[str, ...]:
    """The ``[engine]`` section, as NAME=VALUE entries."""
    if not parser.has_section(ENGINE_SECTION):
        return ()
    return tuple(f"{key}={value}" for key, value in parser.items(ENGINE_SECTION))


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
    engine: tuple[str, ...] = ()  # every source's entries, not the last source's alone
    if config_file:
        parser = _read_ini(config_file)
        merged.update(from_file(parser, config_file))
        sections = servers_from_file(parser, config_file)
        engine = engine_from_file(parser) + tuple(merged.get("engine_options", ()))
    for source in (from_env(environ), {k: v for k, v in flags.items() if v is not None}):
        engine += tuple(source.get("engine_options", ()))
        merged.update(source)
    merged["engine_options"] = engine
    merged["ami"] = tuple(merged.get("ami", ()))
    merged["alert"] = tuple(merged.get("alert", ()))
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


def storage_password(config: BridgeConfig) -> Optional[str]:
    return read_secret(None, config.storage_password_file) or None


def agi_secret(config: BridgeConfig) -> str:
    return read_secret(config.agi_secret, config.agi_secret_file)
