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

from audiosocket_bridge.testing.ports import free_port


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


class Cluster:
    """A throwaway cluster of our own: stop() and start() it to play a database outage."""

    def __init__(self, bin_dir: Path, root: Path, port: int) -> None:
        self.bin_dir, self.root, self.port = bin_dir, root, port
        self.data = root / "data"
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        self.socket_url = f"postgresql://postgres@/postgres?host={root}&port={port}"  # local: trust

    def start(self) -> None:
        started = _as_postgres(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-w", "-l",
                               str(self.root / "log"), "-o",
                               f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1",
                               "start")
        if started.returncode:
            raise RuntimeError(f"could not start PostgreSQL: {started.stderr.strip()}")

    def stop(self) -> None:
        _as_postgres(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                     "stop")


@contextmanager
def postgres_cluster(auth_host: str = "trust") -> Iterator[Cluster]:
    """A throwaway cluster from Debian's postgresql package (as the postgres system user) on a
    free loopback port, started. `auth_host`: for TCP connections ("scram-sha-256" as Debian's
    default cluster has it); the Unix socket (`socket_url`) always trusts."""
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
    cluster = Cluster(bin_dir, root, free_port())
    try:
        if _as_postgres(str(bin_dir / "initdb"), "-D", str(cluster.data), "--auth-local=trust",
                        f"--auth-host={auth_host}", "-U", "postgres").returncode:
            unavailable("initdb failed")
        try:
            cluster.start()
        except RuntimeError as error:
            unavailable(str(error))
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def postgres_server() -> Iterator[str]:
    """The URL of a server's `postgres` database (superuser, trust on loopback)."""
    if os.environ.get("AUDIOSOCKET_TEST_POSTGRES_URL"):
        yield os.environ["AUDIOSOCKET_TEST_POSTGRES_URL"]
        return
    with postgres_cluster() as cluster:
        yield cluster.url


def new_database(server_url: str) -> str:
    """A new empty database on the server; its URL."""
    import psycopg

    name = f"bridge_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return server_url.rsplit("/", 1)[0] + "/" + name
