"""Settings precedence (flags > env > file > defaults) and the export subcommand."""
import subprocess
import sys
import time
from pathlib import Path

import pytest

from audiosocket_bridge import cli
from audiosocket_bridge.config import BridgeConfig
from audiosocket_bridge.values import split_host_port
from audiosocket_bridge.outputs.storage import open_storage
from tests.support.builders import STORED_CALL, fill_storage, resolved_config

REPO = Path(__file__).resolve().parents[2]


def test_defaults():
    settings = resolved_config([], {})
    assert settings == BridgeConfig()
    assert settings.listen == "127.0.0.1:8300" and settings.model == "tiny.en"
    assert settings.storage == "sqlite:///transcripts.db" and settings.partials is True


def test_precedence_flags_env_file(tmp_path):
    file_text = "[bridge]\nmax-calls = 7\nidle_timeout = 9\nmodel = base.en\npartials = no\n"
    environ = {"AUDIOSOCKET_MAX_CALLS": "8", "AUDIOSOCKET_IDLE_TIMEOUT": "11", "AUDIOSOCKET_RAW": "yes"}
    settings = resolved_config(["--max-calls", "9", "--partials"], environ, tmp_path, file_text)
    assert settings.max_calls == 9  # flag beats env and file
    assert settings.idle_timeout == 11.0  # env beats file
    assert settings.model == "base.en"  # file beats default
    assert settings.partials is True and settings.raw is True
    assert resolved_config([], {}, tmp_path, file_text).partials is False


def test_quantize_from_a_flag_the_environment_or_the_file(tmp_path):
    assert resolved_config(["--quantize"], {}).quantize is True
    assert resolved_config([], {"AUDIOSOCKET_QUANTIZE": "yes"}).quantize is True
    assert resolved_config([], {}, tmp_path, "[bridge]\nquantize = yes\n").quantize is True
    assert resolved_config([], {}).quantize is False


def test_bad_values_are_reported(tmp_path):
    with pytest.raises(ValueError, match="boolean"):
        resolved_config([], {"AUDIOSOCKET_RAW": "maybe"})
    with pytest.raises(ValueError, match="unknown setting"):
        resolved_config([], {}, tmp_path, "[bridge]\nlisten_port = 1\n")


def test_ami_secret_from_env_is_never_shown():
    settings = resolved_config([], {"AUDIOSOCKET_AMI_SECRET": "s3cret"})
    assert settings.ami_secret == "s3cret"
    assert "s3cret" not in repr(settings)


def test_webhook_settings_from_flags_environment_and_file(tmp_path):
    settings = resolved_config(["--webhook-url", "https://crm.example/hooks/calls", "--webhook-timeout", "4"],
                        {"AUDIOSOCKET_WEBHOOK_SECRET": "hook-s3cret"}, tmp_path,
                        "[bridge]\nwebhook-max-age = 3600\nwebhook-timeout = 9\n")
    assert (settings.webhook_url, settings.webhook_timeout, settings.webhook_max_age) == (
        "https://crm.example/hooks/calls", 4.0, 3600.0)
    assert settings.webhook_secret == "hook-s3cret" and "hook-s3cret" not in repr(settings)
    with_token = resolved_config(["--webhook-url", "https://crm.example/h?token=t0ken"], {})
    assert "t0ken" not in repr(with_token) and "https://crm.example/h?***" in repr(with_token)
    assert resolved_config([], {}).webhook_url is None  # off by default


def test_a_bad_webhook_url_is_refused_at_start_up(capsys):
    assert cli.main(["--webhook-url", "crm.example/hooks"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("audiosocket-bridge: webhook URL 'crm.example/hooks': expected http")
    with pytest.raises(ValueError, match="webhook URL"):
        resolved_config([], {"AUDIOSOCKET_WEBHOOK_URL": "ftp://crm.example/"})


def test_split_host_port():
    assert split_host_port("0.0.0.0:9000", 8300) == ("0.0.0.0", 9000)
    assert split_host_port(":9000", 8300) == ("127.0.0.1", 9000)
    assert split_host_port("[::1]:9000", 8300) == ("::1", 9000)
    assert split_host_port("example", 8300) == ("example", 8300)
    assert split_host_port("::1", 8300) == ("::1", 8300)  # bare IPv6: every colon belongs to the address
    assert split_host_port("fe80::2:8300", 8300) == ("fe80::2:8300", 8300)
    assert split_host_port("[fe80::2]", 8300) == ("fe80::2", 8300)
    for bad in ("host:http", "host:0", "host:70000", "[::1]:x"):
        with pytest.raises(ValueError, match="invalid address"):
            split_host_port(bad, 8300)


def test_export_subcommand(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/x.db"
    storage = open_storage(url)
    fill_storage(storage)
    storage.close()
    assert cli.main(["export", STORED_CALL, "--format", "srt", "--storage", url]) == 0
    assert capsys.readouterr().out.startswith("1\n00:00:00,500 --> 00:00:01,750\nHello there.")
    assert cli.main(["export", "00000000-0000-0000-0000-000000000000", "--storage", url]) == 1


def test_help_is_fast_and_does_not_import_torch():
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from audiosocket_bridge.cli import main\n"
         "try:\n main(['--help'])\nexcept SystemExit: pass\nassert 'torch' not in sys.modules"],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--listen" in result.stdout and "--agi-listen" in result.stdout
    assert time.monotonic() - started < 5
