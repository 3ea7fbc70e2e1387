"""A real PostgreSQL for the tests: AUDIOSOCKET_TEST_POSTGRES_URL, or a throwaway cluster run
from Debian's postgresql package (as the postgres system user) on a free loopback port.

With CI=true a test that needs PostgreSQL fails when none can be had, instead of skipping.
"""
from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import pytest

from .ports import free_port


def unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"PostgreSQL needed in CI: {reason}")
    pytest.skip(reason)


def _bin_dir() -> Optional[Path]:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    return None


def _as_postgres(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", "postgres", "--", *args], capture_output=True,
                          text=True, timeout=120)


@contextmanager
def postgres_server() -> Iterator[str]:
    """The URL of a server's `postgres` database (superuser, trust on loopback)."""
    if os.environ.get("AUDIOSOCKET_TEST_POSTGRES_URL"):
        yield os.environ["AUDIOSOCKET_TEST_POSTGRES_URL"]
        return
    if importlib.util.find_spec("psycopg") is None:
        unavailable("psycopg is not installed")
    bin_dir = _bin_dir()
    if bin_dir is None or os.geteuid() != 0:
        unavailable("no PostgreSQL server binaries (Debian's postgresql) or not root")
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        unavailable("no postgres system user to run a throwaway cluster")
    root = Path(tempfile.mkdtemp(prefix="bridge-pg-"))
    os.chown(root, pw.pw_uid, pw.pw_gid)
    port, data = free_port(), root / "data"
    try:
        if _as_postgres(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust",
                        "-U", "postgres").returncode:
            unavailable("initdb failed")
        started = _as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l",
                               str(root / "log"), "-o",
                               f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start")
        if started.returncode:
            unavailable(f"could not start PostgreSQL: {started.stderr.strip()}")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        _as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop")
        shutil.rmtree(root, ignore_errors=True)


def new_database(server_url: str) -> str:
    """A new empty database on the server; its URL."""
    import psycopg

    name = f"bridge_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return server_url.rsplit("/", 1)[0] + "/" + name
