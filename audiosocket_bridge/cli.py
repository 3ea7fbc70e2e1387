"""`audiosocket-bridge`: run the bridge, export a stored call's transcript, or store recorded calls.

Heavy imports (torch, the model) happen inside functions so --help is fast.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING, Optional, Sequence

from . import config as config_mod
from . import logsafe
from .config import BridgeConfig
from .logsafe import shown_url
from .outputs.storage_errors import StorageUnavailable
from .recordings import DEFAULT_SPEAKERS

if TYPE_CHECKING:
    from whisper.streaming.interface import Engine

log = logging.getLogger("audiosocket_bridge")

SECRET_ENV = "AUDIOSOCKET_AMI_SECRET"
EXIT_BAD_CONFIG = 2  # bad flags or files: restarting will not help (the unit's RestartPreventExitStatus)
EXIT_STORAGE_UNAVAILABLE = 3  # the database did not open within --storage-wait (same)
# The engine's scheduler thread gives up the GIL around every torch op and must take it back from
# the asyncio thread, which handles 50 AudioSocket frames per second per call; at Python's 5 ms
# switch interval each take-back can wait 5 ms. At 32 calls through the bridge (AMD EPYC, 2 cores)
# p95 final latency was 3.64 s at 5 ms, 1.99 s at 1 ms, 1.96 and 1.36 s at 0.5 ms, 3.33 s at 0.1 ms.
GIL_SWITCH_INTERVAL_S = 0.0005


def _serve_parser(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--config", metavar="FILE", help="INI file with a [bridge] section (keys as the long flags)")
    add("--listen", metavar="HOST:PORT", help="AudioSocket address (default 127.0.0.1:8300)")
    add("--model", help="Whisper model name (default tiny.en)")
    add("--language", help="default spoken language, or several to detect among (es|en); "
                            "default: the model's / detected")
    add("--vocabulary", metavar="PHRASES",
        help="custom vocabulary boosted in every call, phrases separated by | (Zorblax|Okonkwo); "
             "a call's own Vocabulary replaces it")
    add("--device", help="torch device, e.g. cpu or cuda (default: automatic)")
    add("--quantize", action="store_true", default=None,
        help="the decoder's linear layers in int8 on the CPU: about 1.3x faster decoding, about 0.3 "
             "WER points more on tiny.en (default off)")
    add("--storage", metavar="URL", help="sqlite:///transcripts.db (default) or postgresql://...")
    add("--storage-password-file", metavar="FILE",
        help="PostgreSQL's password, read from this file (or give PGPASSWORD or PGPASSFILE in the "
             "environment; never in a URL on the command line)")
    add("--storage-wait", type=float, metavar="SECONDS",
        help="at start, keep trying a database that is not reachable yet for this long, then exit "
             "with status 3 (default 30)")
    add("--spool-dir", metavar="DIR",
        help="keep storage writes here while the database is away, to write them once it is "
             "back (default: $STATE_DIRECTORY, else the SQLite file's folder, else .)")
    add("--log-level", help="DEBUG, INFO (default), WARNING, ERROR")
    add("--max-calls", type=int, help="concurrent calls; more are refused (default 100)")
    add("--max-frame-bytes", type=int, help="largest accepted message payload (default 32768)")
    add("--idle-timeout", type=float, metavar="SECONDS",
        help="close a connection silent for this long (default 30)")
    add("--raw", action="store_true", default=None,
        help="accept bare 16 kHz slin without AudioSocket framing")
    add("--partials", action=argparse.BooleanOptionalAction, default=None,
        help="emit partial transcripts while callers speak (default on)")
    add("--ami-host", help="Asterisk Manager Interface host (enables AMI)")
    add("--ami-port", type=int, help="AMI port (default 5038)")
    add("--ami-user", help="AMI user (default transcriber)")
    add("--ami-secret", help=f"AMI secret (better: the {SECRET_ENV} environment variable)")
    add("--ami-secret-file", metavar="FILE", help="read the AMI secret from this file")
    add("--ami", action="append", metavar="NAME=HOST[:PORT]",
        help="one more Asterisk server by name (repeatable; credentials in an [ami NAME] "
             "section of --config or AUDIOSOCKET_AMI_SECRET_<NAME>; see docs/deployment.rst)")
    add("--agi-listen", metavar="HOST:PORT", help="serve FastAGI on this address")
    add("--metrics-listen", metavar="HOST:PORT",
        help="serve Prometheus /metrics and /healthz over HTTP here (default: off)")
    add("--registration-wait", type=float, metavar="SECONDS",
        help="how long a new call waits for its AMI registration (default 1)")
    add("--shutdown-deadline", type=float, metavar="SECONDS",
        help="time to flush calls on SIGTERM/SIGINT (default 30)")
    add("--drain-grace", type=float, metavar="SECONDS",
        help="on SIGTERM, with --metrics-listen: /healthz fails at once and new calls are still "
             "taken for this long, so a load balancer moves new calls elsewhere (default 3)")
    add("--drain-timeout", type=float, metavar="SECONDS",
        help="on SIGTERM, after the grace: wait this long for calls in progress to end by "
             "themselves before ending them (default 0; a second SIGTERM stops waiting)")
    add("--bridge-id", help="this bridge's name in a database shared by several bridges "
                            "(default HOSTNAME:PORT)")
    add("--engine-process", action=argparse.BooleanOptionalAction, default=None,
        help="run the model in a process of its own, so that it does not share Python's lock "
             "with the calls' network traffic (default on)")
    add("--engine-workers", type=int, metavar="N",
        help="engine processes, each a copy of the model serving its share of the calls "
             "(default 0: one single-threaded worker per core, at most 8; one on a GPU)")
    add("--keepalive", type=float, metavar="SECONDS",
        help="send Asterisk 20 ms of silence when it has sent nothing for this long, so that "
             "AudioSocket() does not hang up after 2 s without media (default 0.5; 0: off)")
    add("--webhook-url", metavar="URL",
        help="POST each ended call's JSON transcript to this http(s) URL (default: off)")
    add("--webhook-secret", help="sign the POSTs with HMAC-SHA256 under this key (better: the "
                                 "AUDIOSOCKET_WEBHOOK_SECRET environment variable)")
    add("--webhook-secret-file", metavar="FILE", help="read the webhook secret from this file")
    add("--webhook-timeout", type=float, metavar="SECONDS",
        help="time allowed for one POST (default 10)")
    add("--http-token-file", metavar="FILE",
        help="the bearer token (16+ characters) that the caption stream, the page's data and "
             "search need, on the --metrics-listen port (default: none, so they are refused)")
    add("--http-no-auth", action="store_true", default=None,
        help="let anyone who reaches the --metrics-listen port read transcripts (behind a "
             "reverse proxy that does its own login; default off)")
    add("--http-max-connections", type=int, metavar="N",
        help="open HTTP connections at most, caption subscribers included (default 256)")
    add("--alert", action="append", metavar="PHRASE",
        help="raise a TranscriptAlert when a final says this phrase (any case, whole words), or "
             "matches re:PATTERN (repeatable)")
    add("--webhook-max-age", type=float, metavar="SECONDS",
        help="stop trying to deliver a call this long after it ended (default 86400)")
    add("--allow", action="append", metavar="CIDR",
        help="AudioSocket peers allowed to connect (repeatable; addresses, CIDRs, loopback, any; "
             "default: loopback and the AMI hosts)")
    add("--agi-allow", action="append", metavar="CIDR",
        help="FastAGI peers allowed (repeatable; default: loopback and the AMI hosts)")
    add("--agi-secret-file", metavar="FILE",
        help="FastAGI requests must carry secret=<this file's contents> (or set "
             "AUDIOSOCKET_AGI_SECRET)")
    add("--handshake-timeout", type=float, metavar="SECONDS",
        help="close a connection that has not sent its UUID within this long (default 5)")
    add("--redact", choices=("off", "pci", "pii"),
        help="replace card numbers (pci, default) and also e-mails and ID numbers (pii) in "
             "everything that leaves the engine; a call's own Redact wins")
    add("--retention-days", type=float, metavar="DAYS",
        help="delete calls ended longer ago than this, with their segments and webhook rows "
             "(default 0: keep forever); a call's own Retention wins")
    add("--engine-option", action="append", dest="engine_options", metavar="NAME=VALUE",
        help="set one of the engine's options, e.g. endpoint.trailing_silence_s=0.8 (repeatable; "
             "also an [engine] section of --config, or AUDIOSOCKET_ENGINE_OPTIONS=A=1;B=2)")
    add("--list-engine-options", action="store_true",
        help="print every engine option with its value after the configuration, and exit")


def _export_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("uuid", help="the call's AudioSocket UUID")
    parser.add_argument("--format", choices=("txt", "srt", "vtt", "json"), default="txt")
    parser.add_argument("--storage", metavar="URL", help="storage URL (default sqlite:///transcripts.db)")
    parser.add_argument("--storage-password-file", metavar="FILE", help="PostgreSQL's password file")
    parser.add_argument("--config", metavar="FILE", help="INI file with a [bridge] section")
    parser.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")
    parser.add_argument("--conversation", action="store_true",
                        help="the argument is a conversation id: export its legs as one "
                             "transcript, each cue labelled with its speaker")


def _transcribe_parser(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("files", nargs="+", metavar="FILE", help="recordings: WAV, FLAC, MP3, Ogg, .sln, .sln16, .ulaw, .alaw, .gsm ...")
    add("--uuid", help="the call's UUID (one file only; default: derived from the file's contents)")
    add("--linkedid", help="the call's linkedid, and a stereo recording's conversation id (one file only; "
                           "default: the file name if it is an Asterisk id such as 1733590000.42, else for a "
                           "stereo recording its UUID)")
    add("--redact", choices=("off", "pci", "pii"), help="redaction policy, as the bridge's (default pci)")
    add("--speakers", default=",".join(DEFAULT_SPEAKERS),
        help="labels of a stereo recording's left and right channels (default %(default)s)")
    add("--batch-size", type=int, default=8, help="legs decoded together (default %(default)s)")
    add("--storage", metavar="URL", help="storage URL (default sqlite:///transcripts.db)")
    add("--config", metavar="FILE", help="INI file with a [bridge] section (storage, webhook, model ...)")
    add("--model", help="Whisper model name (default tiny.en)")
    add("--language", help="spoken language (default: the model's / detected)")
    add("--device", help="torch device, e.g. cpu or cuda (default: automatic)")


def build_transcribe_parser(prog: str = "audiosocket-bridge transcribe") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=(
        "Transcribe recorded calls into the bridge's storage, as calls (a stereo recording as two legs)."))
    _transcribe_parser(parser)
    return parser


def build_parser(prog: str = "audiosocket-bridge") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Transcribe live Asterisk calls streamed over AudioSocket.",
        epilog="Subcommands: `%(prog)s export UUID --format srt` writes a stored transcript; "
               "`%(prog)s search WORDS` finds stored calls by what was said; "
               "`%(prog)s transcribe FILE...` stores recorded calls. "
               "Every setting can also come from AUDIOSOCKET_<NAME> environment variables "
               "(e.g. AUDIOSOCKET_MAX_CALLS) or the --config file; flags win over the "
               "environment, which wins over the file.")
    _serve_parser(parser)
    return parser


def build_export_parser(prog: str = "audiosocket-bridge export") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Export a stored call transcript.")
    _export_parser(parser)
    return parser


def _flags(namespace: argparse.Namespace) -> dict:
    known = {f for f in BridgeConfig.__dataclass_fields__}
    return {k: v for k, v in vars(namespace).items() if k in known}


def load_config(namespace: argparse.Namespace, environ=None) -> BridgeConfig:
    environ = os.environ if environ is None else environ
    return config_mod.resolve(_flags(namespace), environ, namespace.config)


# ---------------------------------------------------------------- export

def run_export(argv: Sequence[str], environ=None) -> int:
    """A call's export streams to --output or stdout (outputs/export.py)."""
    from .outputs.export import export_conversation, write_call
    from .outputs.storage_errors import open_storage_when_up

    args = build_export_parser().parse_args(argv)
    settings = load_config(args, environ)
    storage = open_storage_when_up(settings.storage, password=config_mod.storage_password(settings))
    try:
        if args.conversation:
            text = export_conversation(storage, args.uuid, args.format)
            found = text is not None
            if found:
                _write_out(args.output, lambda out: out.write(text))
        else:
            found = storage.get_call(args.uuid) is not None
            if found:
                _write_out(args.output,
                           lambda out: write_call(storage, args.uuid, args.format, out))
    finally:
        storage.close()
    if not found:
        what = "conversation" if args.conversation else "call"
        print(f"no stored {what} {args.uuid} in {shown_url(settings.storage)}", file=sys.stderr)
        return 1
    return 0


def _write_out(path: Optional[str], write) -> None:
    """`write(file)` into the file at `path`, or to stdout."""
    if path:
        with open(path, "w", encoding="utf-8") as handle:
            write(handle)
    else:
        write(sys.stdout)


# ---------------------------------------------------------------- transcribe

def run_transcribe(argv: Sequence[str], environ=None) -> int:
    from pathlib import Path

    from .recordings import RecordingOptions, parse_speakers, transcribe_into_storage

    args = build_transcribe_parser().parse_args(argv)
    if (args.uuid or args.linkedid) and len(args.files) > 1:
        raise ValueError("--uuid and --linkedid name one recording's call: give one FILE with them")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, not {args.batch_size}")
    settings = load_config(args, environ)
    language = settings.language
    if language and "|" in language:
        raise ValueError(f"recordings take one --language, not a list to detect among ({language!r})")
    options = RecordingOptions(uuid=args.uuid, linkedid=args.linkedid, speakers=parse_speakers(args.speakers),
                               language=language, redact=settings.redact, batch_size=args.batch_size)  # fmt: skip
    import whisper

    device = {"device": settings.device} if settings.device else {}
    model = whisper.load_model(settings.model, quantize=settings.quantize, **device)
    outcome = asyncio.run(transcribe_into_storage(settings, options, model, [Path(f) for f in args.files]))
    print(f"{outcome.stored} call(s) stored, {outcome.skipped} already stored, {outcome.failed} recording(s) "
          f"unreadable", file=sys.stderr)  # fmt: skip
    return 1 if outcome.failed else 0


# ---------------------------------------------------------------- search

def build_search_parser(prog: str = "audiosocket-bridge search") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Find stored calls by what was said: "
                                     "the finals holding every word, newest calls first.")
    parser.add_argument("words", help='e.g. "refund" or "cancel contract"')
    parser.add_argument("--limit", type=int, default=50, help="most finals shown (default 50)")
    parser.add_argument("--storage", metavar="URL", help="storage URL (default sqlite:///transcripts.db)")
    parser.add_argument("--config", metavar="FILE", help="INI file with a [bridge] section")
    return parser


def run_search(argv: Sequence[str], environ=None) -> int:
    from .outputs.search import search
    from .outputs.storage_errors import open_storage_when_up

    args = build_search_parser().parse_args(argv)
    settings = load_config(args, environ)
    storage = open_storage_when_up(settings.storage, password=config_mod.storage_password(settings))
    try:
        hits = search(storage, args.words, args.limit)
    finally:
        storage.close()
    for hit in hits:
        who = f"{hit.speaker}: " if hit.speaker else ""
        print(f"{hit.started_at.isoformat(timespec='seconds')}  {hit.uuid}  #{hit.segment_index} "
              f"[{hit.start_s:.1f}s]  {who}{hit.text.strip()}")
    return 0 if hits else 1


# ---------------------------------------------------------------- serve

def check_storage(settings: BridgeConfig) -> None:
    """Opens and closes the storage (waiting up to --storage-wait): StorageUnavailable if not."""
    from .outputs.storage_errors import open_storage_when_up

    open_storage_when_up(settings.storage, password=config_mod.storage_password(settings),
                         wait_s=settings.storage_wait).close()


def build_engine(settings: BridgeConfig) -> "Engine":
    if settings.engine_process:
        from whisper.streaming.pool import EnginePool, nvidia_gpu_present, plan_workers, usable_cores

        workers, threads = plan_workers(settings.engine_workers, settings.device, usable_cores(),
                                        nvidia_gpu_present())  # fmt: skip
        engine = EnginePool(settings.model, workers, device=settings.device, threads=threads,
                            quantize=settings.quantize, options=config_mod.engine_options(settings))
        engine.start()
        return engine
    if settings.engine_workers > 1:
        raise ValueError("--engine-workers above 1 needs the engine process (drop --no-engine-process)")
    import whisper
    from whisper.streaming import StreamingEngine

    device = {"device": settings.device} if settings.device else {}
    model = whisper.load_model(settings.model, quantize=settings.quantize, **device)
    engine = StreamingEngine(model, config_mod.engine_options(settings))
    engine.start()
    return engine


async def serve(settings: BridgeConfig, engine: "Engine", stop: Optional[asyncio.Event] = None) -> None:
    """Run until `stop` is set (or SIGTERM/SIGINT), then shut down gracefully."""
    from .bridge import Bridge

    stop = stop or asyncio.Event()
    async with Bridge.from_config(settings, engine) as bridge:
        _install_signal_handlers(stop)
        await stop.wait()
        stop.clear()  # a second signal cuts the drain short
        await bridge.drain(settings.drain_grace, settings.drain_timeout, stop)
        log.info("shutting down")


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread / not POSIX
            pass


def run_serve(argv: Sequence[str], environ=None) -> int:
    args = build_parser().parse_args(argv)
    settings = load_config(args, environ)
    if args.list_engine_options:
        return _list_engine_options(settings)
    logsafe.install(settings.log_level)
    log.info("starting with %r", settings)
    _warn_about_visible_secrets(args, settings)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    check_storage(settings)  # before the model loads: a wrong password fails in a second
    engine = build_engine(settings)
    try:
        asyncio.run(serve(settings, engine))
    finally:
        engine.stop()
    return 0


def _list_engine_options(settings: BridgeConfig) -> int:
    from whisper.streaming.options import option_defaults

    for name, value in option_defaults(config_mod.engine_options(settings)).items():
        shown = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) \
            if isinstance(value, tuple) else value
        print(f"{name}={shown}")
    return 0


def _warn_about_visible_secrets(args: argparse.Namespace, settings: BridgeConfig) -> None:
    """Every local user sees a process's arguments (ps): secrets belong in a file or the
    environment."""
    for flag, value in (("--ami-secret", args.ami_secret), ("--webhook-secret", args.webhook_secret)):
        if value:
            log.warning("%s on the command line is visible to every local user (ps); use its "
                        "-file option or environment variable", flag)
    if args.storage and "@" in args.storage.partition("://")[2].partition("/")[0] \
            and ":" in args.storage.partition("://")[2].partition("@")[0]:
        log.warning("--storage carries a password on the command line, visible to every local "
                    "user (ps); use --storage-password-file, PGPASSFILE or the AUDIOSOCKET_STORAGE "
                    "environment variable")
    if not settings.retention_days:
        log.info("no --retention-days: stored calls are kept until deleted by hand")


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["export"]:
            return run_export(argv[1:])
        if argv[:1] == ["transcribe"]:
            return run_transcribe(argv[1:])
        if argv[:1] == ["search"]:
            return run_search(argv[1:])
        return run_serve(argv)
    except (ValueError, OSError) as error:
        print(f"audiosocket-bridge: {error}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except StorageUnavailable as error:
        print(f"audiosocket-bridge: {error}", file=sys.stderr)
        return EXIT_STORAGE_UNAVAILABLE


if __name__ == "__main__":
    sys.exit(main())
