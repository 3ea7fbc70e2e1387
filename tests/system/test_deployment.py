"""Deployment on Debian's defaults: PostgreSQL asking for a password on 127.0.0.1 (scram-sha-256,
as a stock cluster's pg_hba.conf does), the password from a file, one clear line and a status
systemd does not restart on when the database cannot be opened, and deploy/ files that name
files that exist."""
import configparser
import logging
import re
from pathlib import Path

import pytest

from audiosocket_bridge import cli
from audiosocket_bridge.bridge import Bridge
from audiosocket_bridge.outputs.storage_errors import StorageUnavailable, open_storage_when_up
from tests.support.fake_engine import FakeEngine
from audiosocket_bridge.testing.ports import free_port
from tests.support.postgres import postgres_cluster

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "c0rrect-h0rse"


@pytest.fixture(scope="module")
def debian_like():
    """A cluster that wants passwords over TCP, the README's role and database in it."""
    import psycopg

    with postgres_cluster(auth_host="scram-sha-256") as cluster:
        with psycopg.connect(cluster.socket_url, autocommit=True) as admin:
            admin.execute(f"CREATE ROLE asterisk_whisper LOGIN PASSWORD '{PASSWORD}'")
            admin.execute("CREATE DATABASE asterisk_whisper OWNER asterisk_whisper")
        yield f"postgresql://asterisk_whisper@127.0.0.1:{cluster.port}/asterisk_whisper"


def serve(*argv: str) -> int:
    return cli.main([*argv, "--storage-wait", "0", "--listen", f"127.0.0.1:{free_port()}"])


def test_without_the_password_one_line_and_status_3_before_the_model_loads(debian_like, capsys):
    assert serve("--storage", debian_like) == cli.EXIT_STORAGE_UNAVAILABLE
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("audiosocket-bridge:")]
    assert "Traceback" not in err and len(errors) == 1  # above it: the log's start-up lines
    assert errors[0].startswith("audiosocket-bridge: storage postgresql://***@127.0.0.1:")
    assert "no password supplied" in errors[0]


def test_a_wrong_password_is_refused_without_showing_it(debian_like, tmp_path, capsys):
    wrong = tmp_path / "storage.password"
    wrong.write_text("not-it\n")
    assert serve("--storage", debian_like, "--storage-password-file", str(wrong)) == 3
    error = capsys.readouterr().err
    assert "password authentication failed" in error and "not-it" not in error


def test_the_password_file_opens_the_database_and_no_log_line_shows_it(debian_like, tmp_path,
                                                                      caplog):
    secret = tmp_path / "storage.password"
    secret.write_text(PASSWORD + "\n")
    settings = cli.load_config(cli.build_parser().parse_args(
        ["--storage", debian_like, "--storage-password-file", str(secret),
         "--spool-dir", str(tmp_path)]), {})
    with caplog.at_level(logging.DEBUG):
        bridge = Bridge.from_config(settings, FakeEngine())
        try:
            assert bridge.storage.get_call("nobody") is None  # answering, as asterisk_whisper
            assert bridge.presence_storage is not bridge.storage  # heartbeats' own connection
        finally:
            bridge.presence_storage.close()
            bridge.storage.close()
        logging.getLogger("test").info("%r", settings)
    assert PASSWORD not in caplog.text and PASSWORD not in repr(settings)
    masked = cli.load_config(cli.build_parser().parse_args(
        ["--storage", debian_like.replace("@", f":{PASSWORD}@")]), {})
    assert PASSWORD not in repr(masked)


def test_a_database_not_up_yet_is_waited_for_then_given_up():
    pauses = []
    url = f"postgresql://nobody@127.0.0.1:{free_port()}/none"  # nothing listens there
    pytest.importorskip("psycopg")
    with pytest.raises(StorageUnavailable, match="Connection refused"):
        open_storage_when_up(url, wait_s=10.0, sleep=pauses.append)
    assert pauses == [1.0, 2.0, 4.0]  # 1 + 2 + 4 s waited; 8 more would pass 10


def test_the_unit_does_not_restart_on_the_exits_that_restarting_cannot_fix():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(REPO / "deploy" / "audiosocket-bridge@.service")
    statuses = unit["Service"]["RestartPreventExitStatus"].split()
    assert {str(cli.EXIT_BAD_CONFIG), str(cli.EXIT_STORAGE_UNAVAILABLE)} <= set(statuses)


def test_deploy_files_and_the_readme_name_deploy_files_that_exist():
    texts = [path.read_text(encoding="utf-8") for path in (REPO / "deploy").iterdir()]
    texts += [path.read_text(encoding="utf-8") for path in [REPO / "README.rst", *(REPO / "docs").iterdir()]]
    named = {m for text in texts for m in re.findall(r"deploy/[\w@.-]+\w", text)}
    assert "deploy/haproxy.cfg" in named
    assert [n for n in sorted(named) if not (REPO / n).exists()] == []
