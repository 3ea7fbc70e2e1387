"""`audiosocket-bridge`: run the bridge, or export a stored call's transcript.

Heavy imports (torch, the model) happen inside functions so --help is fast.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from typing import Optional, Sequence

from . import config as config_mod
from .config import BridgeConfig

log = logging.getLogger("audiosocket_bridge")

SECRET_ENV = "AUDIOSOCKET_AMI_SECRET"
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
             "section of --config or AUDIOSOCKET_AMI_SECRET_<NAME>; see README)")
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
    add("--webhook-max-age", type=float, metavar="SECONDS",
        help="stop trying to deliver a call this long after it ended (default 86400)")


def _export_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("uuid", help="the call's AudioSocket UUID")
    parser.add_argument("--format", choices=("txt", "srt", "vtt", "json"), default="txt")
    parser.add_argument("--storage", metavar="URL", help="storage URL (default sqlite:///transcripts.db)")
    parser.add_argument("--config", metavar="FILE", help="INI file with a [bridge] section")
    parser.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")


def build_parser(prog: str = "audiosocket-bridge") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Transcribe live Asterisk calls streamed over AudioSocket.",
        epilog="Subcommand: `%(prog)s export UUID --format srt` writes a stored transcript. "
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
    from .outputs.export import export_call
    from .outputs.storage import open_storage

    args = build_export_parser().parse_args(argv)
    settings = load_config(args, environ)
    storage = open_storage(settings.storage)
    try:
        text = export_call(storage, args.uuid, args.format)
    finally:
        storage.close()
    if text is None:
        print(f"no stored call {args.uuid} in {settings.storage}", file=sys.stderr)
        return 1
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return 0


# ---------------------------------------------------------------- serve

def build_engine(settings: BridgeConfig):
    if settings.engine_process:
        from whisper.streaming.pool import EnginePool, nvidia_gpu_present, plan_workers, usable_cores

        workers, threads = plan_workers(settings.engine_workers, settings.device, usable_cores(),
                                        nvidia_gpu_present())  # fmt: skip
        engine = EnginePool(settings.model, workers, device=settings.device, threads=threads,
                            quantize=settings.quantize)
        engine.start()
        return engine
    if settings.engine_workers > 1:
        raise ValueError("--engine-workers above 1 needs the engine process (drop --no-engine-process)")
    import whisper
    from whisper.streaming import EngineOptions, StreamingEngine

    device = {"device": settings.device} if settings.device else {}
    model = whisper.load_model(settings.model, quantize=settings.quantize, **device)
    engine = StreamingEngine(model, EngineOptions())
    engine.start()
    return engine


async def serve(settings: BridgeConfig, engine, stop: Optional[asyncio.Event] = None) -> None:
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
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.info("starting with %r", settings)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    engine = build_engine(settings)
    try:
        asyncio.run(serve(settings, engine))
    finally:
        engine.stop()
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["export"]:
            return run_export(argv[1:])
        return run_serve(argv)
    except (ValueError, OSError) as error:
        print(f"audiosocket-bridge: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
