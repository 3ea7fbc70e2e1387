"""A real Asterisk for the tests: built once from a source tarball (or one you installed), run on
free loopback ports with its own configuration in a temporary folder.

Build:  ``python tests/asterisk_pbx.py build`` (the test suite does the same on first use). The
build is cached under ``$ASTERISK_CACHE_DIR`` (default ``~/.cache/asterisk-whisper-bridge``),
keyed on the tarball's SHA-256, the configure options and the module list, so a second run on the
same machine takes a second. This file imports nothing from the project, so that it runs as a
script from this path (the README's test command does) as well as ``tests.asterisk_pbx``.

Environment:
  ASTERISK_TARBALL   source tarball (default ../shared/asterisk/asterisk-22.10.1.tar.gz beside
                     the repository)
  ASTERISK_BINARY    use an installed asterisk instead of building one (its modules are looked
                     for in PREFIX/lib/asterisk/modules, or give ASTERISK_MODULES_DIR)
  ASTERISK_SOUNDS_DIR  where the prompts are (default /usr/share/asterisk/sounds)
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parent.parent
DIALPLAN_DIR = REPO / "dialplan"
DEFAULT_TARBALL = REPO.parent / "shared" / "asterisk" / "asterisk-22.10.1.tar.gz"
BUILD_PACKAGES = ("build-essential pkg-config libedit-dev libjansson-dev libxml2-dev uuid-dev "
                  "libsqlite3-dev libssl-dev")
CONFIGURE_OPTIONS = ("--without-pjproject-bundled", "--without-pjproject", "--with-jansson-bundled=no",
                     "--with-libjwt-bundled=no")
MODULES = (
    "app_audiosocket chan_audiosocket res_audiosocket app_dial app_originate app_stack app_exec "
    "app_system app_verbose app_userevent app_playback app_controlplayback app_playtones "
    "app_senddtmf app_echo app_milliwatt app_read app_record app_mixmonitor app_chanspy "
    "app_bridgewait res_agi res_speech res_clioriginate res_musiconhold res_rtp_asterisk "
    "res_timing_timerfd res_timing_pthread pbx_config bridge_simple bridge_native_rtp "
    "bridge_softmix bridge_builtin_features bridge_holding chan_bridge_media format_wav "
    "format_pcm format_gsm format_sln codec_resample codec_ulaw codec_alaw codec_a_mu codec_gsm "
    "func_uuid func_shell func_strings func_logic func_channel func_global func_callerid func_db "
    "func_cut func_math func_rand func_env func_hangupcause func_timeout func_volume"
).split()
# Empty files keep Asterisk's start-up free of errors about configs we do not use.
STUB_CONFIGS = ("cdr.conf", "cel.conf", "features.conf", "acl.conf", "udptl.conf", "ccss.conf",
                "musiconhold.conf", "rtp.conf")


class AsteriskUnavailable(RuntimeError):
    """No Asterisk can be built or found; the message says what is missing."""


def _log(message: str) -> None:
    print(f"[asterisk] {message}", file=sys.stderr, flush=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_dir() -> Path:
    return Path(os.environ.get("ASTERISK_CACHE_DIR", Path.home() / ".cache" / "asterisk-whisper-bridge"))


def tarball_path() -> Path:
    return Path(os.environ.get("ASTERISK_TARBALL", DEFAULT_TARBALL))


def build_key(tarball: Path) -> str:
    recipe = "\n".join([_sha256(tarball), *CONFIGURE_OPTIONS, *sorted(MODULES)])
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def _run(args: List[str], cwd: Path, log_path: Path) -> None:
    with log_path.open("ab") as log:
        log.write(f"\n$ {' '.join(args)}\n".encode())
        log.flush()
        result = subprocess.run(args, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        tail = log_path.read_text(errors="replace")[-3000:]
        raise AsteriskUnavailable(f"{' '.join(args[:2])} failed (exit {result.returncode}); "
                                  f"log {log_path}:\n{tail}")


def _compile(tarball: Path, prefix: Path, work: Path) -> None:
    log_path = prefix.parent / f"{prefix.name}.build.log"
    log_path.write_text("")
    with tarfile.open(tarball) as archive:
        archive.extractall(work, filter="tar")
    source = next(p for p in work.iterdir() if p.is_dir())
    steps = [
        ("configure", ["./configure", f"--prefix={prefix}", *CONFIGURE_OPTIONS]),
        ("menuselect", ["make", "menuselect.makeopts"]),
        ("menuselect", ["menuselect/menuselect", "--disable-all", "menuselect.makeopts"]),
        ("menuselect", ["menuselect/menuselect", *[a for m in MODULES for a in ("--enable", m)],
                        "--enable", "OPTIONAL_API", "menuselect.makeopts"]),
        ("make", ["make", f"-j{os.cpu_count() or 2}"]),
        ("install", ["make", "install"]),
    ]
    for number, (name, args) in enumerate(steps, 1):
        started_s = time.monotonic()
        _log(f"step {number}/{len(steps)}: {name} ...")
        _run(args, source, log_path)
        _log(f"step {number}/{len(steps)}: {name} done in {time.monotonic() - started_s:.0f} s")


def build(tarball: Optional[Path] = None) -> Path:
    """The install prefix of a cached build of ``tarball``, building it first if needed."""
    tarball = tarball or tarball_path()
    if not tarball.is_file():
        raise AsteriskUnavailable(f"no Asterisk source tarball at {tarball} (set ASTERISK_TARBALL, "
                                  "or ASTERISK_BINARY for an installed asterisk)")
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    prefix = root / f"asterisk-{build_key(tarball)}"
    done = prefix / ".complete"
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs at once build it once
        if done.exists():
            return prefix
        _log(f"building {tarball.name} into {prefix} (once; about 5 minutes on 2 cores; "
             f"needs Debian packages: {BUILD_PACKAGES})")
        shutil.rmtree(prefix, ignore_errors=True)
        started_s = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="asterisk-build-", dir=root) as work:
            _compile(tarball, prefix, Path(work))
        done.write_text(f"{tarball}\n")
        _log(f"built in {time.monotonic() - started_s:.0f} s")
    return prefix


@dataclass(frozen=True)
class Installation:
    binary: Path
    modules_dir: Path
    data_dir: Path  # holds documentation/, without which some core modules refuse to load

    @classmethod
    def find(cls) -> "Installation":
        given = os.environ.get("ASTERISK_BINARY")
        if given:
            binary = Path(shutil.which(given) or given)
            if not binary.is_file():
                raise AsteriskUnavailable(f"ASTERISK_BINARY={given} is not a file")
            prefix = binary.resolve().parent.parent
            modules = Path(os.environ.get("ASTERISK_MODULES_DIR", prefix / "lib" / "asterisk" / "modules"))
            data = Path(os.environ.get("ASTERISK_DATA_DIR", _first_dir(
                prefix / "var" / "lib" / "asterisk", Path("/usr/share/asterisk"))))
        else:
            prefix = build()
            binary, modules = prefix / "sbin" / "asterisk", prefix / "lib" / "asterisk" / "modules"
            data = prefix / "var" / "lib" / "asterisk"
        if not (modules / "app_audiosocket.so").exists():
            raise AsteriskUnavailable(f"{modules} has no app_audiosocket.so (set ASTERISK_MODULES_DIR)")
        return cls(binary, modules, data)


def _first_dir(*candidates: Path) -> Path:
    return next((path for path in candidates if (path / "documentation").is_dir()), candidates[0])


def manager_user_setting(user: str, key: str, path: Path = DIALPLAN_DIR / "manager.conf") -> str:
    """A value of one user's section in an Asterisk manager.conf (comments after ';' dropped)."""
    section = None
    for line in path.read_text().splitlines():
        line = line.split(";", 1)[0].strip()
        if line.startswith("["):
            section = line[1:line.index("]")]
        elif section == user and "=" in line:
            name, value = (part.strip() for part in line.split("=", 1))
            if name == key:
                return value
    raise KeyError(f"no {key} for [{user}] in {path}")


@dataclass
class Asterisk:
    """One running Asterisk with the project's dialplan/ files included in its configuration."""

    installation: Installation
    root: Path
    ami_port: int  # a free loopback port (audiosocket_bridge.testing.ports.free_port)
    globals: Dict[str, str] = field(default_factory=dict)  # override [globals] of extensions.conf
    extra_dialplan: str = ""  # test-only contexts appended after dialplan/extensions.conf
    # exact texts of dialplan/extensions.conf replaced once each (e.g. a PJSIP Dial by a Local one)
    substitutions: Dict[str, str] = field(default_factory=dict)
    extra_manager: str = ""  # more users after dialplan/manager.conf
    process: Optional[subprocess.Popen] = None

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def log_path(self) -> Path:
        return self.root / "log" / "messages"

    def _directories(self) -> Dict[str, Path]:
        names = ("etc", "var/lib", "db", "keys", "agi", "spool", "run", "log", "cache", "data")
        return {name: self.root / name for name in names}

    def write_config(self) -> None:
        dirs = self._directories()
        for path in dirs.values():
            path.mkdir(parents=True, exist_ok=True)
        sounds = Path(os.environ.get("ASTERISK_SOUNDS_DIR", "/usr/share/asterisk/sounds"))
        (dirs["data"] / "sounds").symlink_to(sounds)
        (dirs["data"] / "documentation").symlink_to(self.installation.data_dir / "documentation")
        keys = {"etc": "astetcdir", "var/lib": "astvarlibdir", "db": "astdbdir", "keys": "astkeydir",
                "data": "astdatadir", "agi": "astagidir", "spool": "astspooldir", "run": "astrundir",
                "log": "astlogdir", "cache": "astcachedir"}
        lines = ["[directories]", f"astmoddir => {self.installation.modules_dir}"]
        lines += [f"{keys[name]} => {path}" for name, path in dirs.items()]
        lines += ["[options]", "verbose = 3", "defaultlanguage = en", "transmit_silence = no"]
        self._write("asterisk.conf", lines)
        self._write("modules.conf", ["[modules]", "autoload = yes", "noload = chan_pjsip.so",
                                     "noload = res_pjsip.so", "noload = chan_sip.so"])
        self._write("logger.conf", ["[general]", "[logfiles]", "messages => notice,warning,error,verbose"])
        self._write("manager.conf", [f'#include "{DIALPLAN_DIR / "manager.conf"}"', "[general](+)",
                                     f"port = {self.ami_port}", "bindaddr = 127.0.0.1",
                                     self.extra_manager])
        overrides = [f"{name}={value}" for name, value in self.globals.items()]
        self._write("extensions.conf", ["[general]", "static = yes", "writeprotect = yes",
                                        f'#include "{self._project_dialplan()}"',
                                        "[globals](+)", *overrides, self.extra_dialplan])
        for name in STUB_CONFIGS:
            self._write(name, [])
        self._write("indications.conf", ["[general]", "country = us", "[us]", "description = US",
                                         "dial = 350+440", "ring = 440+480/2000,0/4000",
                                         "busy = 480+620/500,0/500",
                                         "congestion = 480+620/250,0/250"])

    def _project_dialplan(self) -> Path:
        """dialplan/extensions.conf itself, or a copy with the substitutions applied."""
        original = DIALPLAN_DIR / "extensions.conf"
        if not self.substitutions:
            return original
        text = original.read_text()
        for old, new in self.substitutions.items():
            if text.count(old) != 1:
                raise AssertionError(f"{old!r} is in {original} {text.count(old)} times, not once")
            text = text.replace(old, new)
        copy = self.etc / "project-extensions.conf"
        copy.write_text(text)
        return copy

    def _write(self, name: str, lines: List[str]) -> None:
        (self.etc / name).write_text("\n".join(lines) + "\n")

    def _command(self, *args: str) -> List[str]:
        return [str(self.installation.binary), "-C", str(self.etc / "asterisk.conf"), *args]

    def start(self, timeout_s: float = 60.0) -> None:
        self.write_config()
        self.process = subprocess.Popen(self._command("-f"), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AsteriskUnavailable(f"asterisk exited with {self.process.returncode}; "
                                          f"log:\n{self.log_text()[-3000:]}")
            probe = subprocess.run(self._command("-rx", "core waitfullybooted"), capture_output=True,
                                   text=True, timeout=timeout_s)
            if probe.returncode == 0 and "fully booted" in probe.stdout.lower():
                return
            time.sleep(0.2)
        raise AsteriskUnavailable("asterisk did not boot within {timeout_s:g} s")

    def cli(self, command: str, timeout_s: float = 20.0) -> str:
        result = subprocess.run(self._command("-rx", command), capture_output=True, text=True,
                                timeout=timeout_s)
        return result.stdout

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, needle: str, timeout_s: float = 30.0, start: int = 0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = self.log_text()
            if needle in text[start:]:
                return text
            time.sleep(0.1)
        raise AssertionError(f"{needle!r} not in the Asterisk log within {timeout_s:g} s:\n"
                             f"{self.log_text()[start:][-4000:]}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.cli("core stop now")
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


if __name__ == "__main__":
    if sys.argv[1:] != ["build"]:
        sys.exit("usage: python tests/asterisk_pbx.py build")
    try:
        print(Installation.find().binary)  # builds unless ASTERISK_BINARY names one
    except AsteriskUnavailable as error:
        if os.environ.get("CI") == "true":
            sys.exit(f"asterisk_pbx: {error}")
        _log(f"{error}; the real-Asterisk tests will be skipped")
