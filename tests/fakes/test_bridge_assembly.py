"""The one assembly point (audiosocket_bridge.bridge): what the flags turn into, the sinks'
order, and a start that fails half-way."""
import asyncio
import socket

import pytest

from audiosocket_bridge import cli
from audiosocket_bridge.bridge import Bridge, ami_configs, session_settings, webhook_options
from tests.support.bridges import ANY_LOOPBACK_PORT
from tests.support.fake_engine import FakeEngine
from audiosocket_bridge.testing.ports import free_port


def config(*argv: str, environ=None):
    return cli.load_config(cli.build_parser().parse_args(list(argv)), environ or {})


def sink_names(bridge: Bridge) -> list[str]:
    return [type(sink).__name__ for sink in bridge.sinks.sinks]


def test_every_side_on_and_the_sinks_in_their_order(tmp_path):
    bridge = Bridge.from_config(config(
        "--listen", "127.0.0.1:9001", "--storage", f"sqlite:///{tmp_path}/a.db",
        "--ami-host", "10.0.0.5", "--agi-listen", "127.0.0.1", "--metrics-listen", ":9401",
        "--alert", "cancel my contract", "--alert", "re:refund(ed)?", "--http-no-auth",
        "--http-max-connections", "9"), FakeEngine())
    try:
        assert sink_names(bridge) == ["DurableStorageSink", "ConsoleSink", "AmiRouter", "BridgeMetrics",
                                      "CaptionHub", "AlertSink", "LiveCalls"]
        assert [rule.name for rule in bridge.alerts.rules] == ["cancel my contract", "re:refund(ed)?"]
        assert bridge.alerts.receivers == [bridge.storage_sink, bridge.ami_sink, bridge.captions]
        assert bridge.metrics_server.limits.max_connections == 9
        assert list(bridge.ami_sink.servers) == ["default"]
        assert (bridge.server.host, bridge.server.port) == ("127.0.0.1", 9001)
        assert (bridge.agi_server.host, bridge.agi_server.port) == ("127.0.0.1", 4573)
        assert (bridge.metrics_server.host, bridge.metrics_server.port) == ("127.0.0.1", 9401)
        assert bridge.metrics.server is bridge.server and bridge.metrics.ami_sink is bridge.ami_sink
        assert bridge.session.registration_wait_s == 1.0  # waits for AMI registrations
    finally:
        bridge.storage.close()


def test_only_storage_console_and_live_calls_by_default(tmp_path):
    bridge = Bridge.from_config(config("--storage", f"sqlite:///{tmp_path}/a.db"), FakeEngine())
    try:
        assert sink_names(bridge) == ["DurableStorageSink", "ConsoleSink", "AlertSink", "LiveCalls"]
        assert bridge.ami_sink is bridge.agi_server is bridge.metrics_server is bridge.captions is None
        assert (bridge.server.host, bridge.server.port) == ("127.0.0.1", 8300)
        assert bridge.session.registration_wait_s == 0.0  # nothing could register the call
    finally:
        bridge.storage.close()


def test_session_settings_from_the_flags():
    settings = session_settings(config("--max-frame-bytes", "4096", "--idle-timeout", "5",
                                       "--raw", "--no-partials", "--language", "de",
                                       "--keepalive", "0", "--shutdown-deadline", "12"))
    assert (settings.max_frame_bytes, settings.idle_timeout_s, settings.raw, settings.partials,
            settings.language) == (4096, 5.0, True, False, "de")
    assert (settings.keepalive_s, settings.shutdown_deadline_s) == (0.0, 12.0)
    assert session_settings(config()).keepalive_s == 0.5
    assert session_settings(config(environ={"AUDIOSOCKET_KEEPALIVE": "1.5"})).keepalive_s == 1.5


def ami_config(settings):
    """The one AMI server of settings that give one."""
    (only,) = ami_configs(settings)
    return only


def test_ami_settings_from_the_flags():
    assert ami_configs(config()) == []
    ami = ami_config(config("--ami-host", "pbx", "--ami-port", "5039", "--ami-user", "bridge",
                            "--no-partials", environ={"AUDIOSOCKET_AMI_SECRET": "s3cret"}))
    assert (ami.name, ami.host, ami.port, ami.username, ami.secret, ami.partials) == (
        "default", "pbx", 5039, "bridge", "s3cret", False)
    assert "s3cret" not in repr(ami)


def test_ami_credentials_from_the_environment_and_the_secret_from_a_file(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-file\n")
    settings = config("--partials", environ={
        "AUDIOSOCKET_AMI_HOST": "10.0.0.5", "AUDIOSOCKET_AMI_PORT": "5039",
        "AUDIOSOCKET_AMI_USER": "bridge", "AUDIOSOCKET_AMI_SECRET_FILE": str(secret_file)})
    ami = ami_config(settings)
    assert (ami.host, ami.port, ami.username, ami.secret, ami.partials) == (
        "10.0.0.5", 5039, "bridge", "from-file", True)
    assert "from-file" not in repr(ami) and "from-file" not in repr(settings)
    given = config("--ami-host", "pbx", "--ami-secret-file", str(secret_file),
                   environ={"AUDIOSOCKET_AMI_SECRET": "given"})
    assert ami_config(given).secret == "given"  # a secret given as such wins over the file


def test_a_start_that_fails_half_way_closes_what_it_started(tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    audiosocket_port = free_port()
    bridge = Bridge(FakeEngine(), storage_url=f"sqlite:///{tmp_path}/a.db",
                    listen=("127.0.0.1", audiosocket_port), agi_listen=taken.getsockname(),
                    metrics_listen=ANY_LOOPBACK_PORT)

    async def scenario():
        with pytest.raises(OSError):
            async with bridge:
                pass
        with pytest.raises(OSError):  # the AudioSocket server that did start was closed again
            await asyncio.open_connection("127.0.0.1", audiosocket_port)

    try:
        asyncio.run(scenario())
    finally:
        taken.close()
    with pytest.raises(Exception):
        bridge.storage.ping()  # closed with the sinks


SEVERAL_PBXS = """
[bridge]
ami-user = bridge
[ami east]
host = 10.0.1.5
secret = east%secret
[ami west]
host = 10.0.2.5
port = 5039
user = west-bridge
secret-file = {secret_file}
"""


def test_several_ami_servers_from_sections_flags_and_the_environment(tmp_path):
    secret_file = tmp_path / "west-secret"
    secret_file.write_text("west-secret\n")
    ini = tmp_path / "bridge.ini"
    ini.write_text(SEVERAL_PBXS.format(secret_file=secret_file))
    settings = config("--config", str(ini), "--ami-host", "10.0.0.5", "--ami", "west=10.0.2.6",
                      "--ami", "north=[::1]:5040", environ={
                          "AUDIOSOCKET_AMI_SECRET": "shared",
                          "AUDIOSOCKET_AMI_SECRET_NORTH": "north-secret"})
    servers = {c.name: (c.host, c.port, c.username, c.secret) for c in ami_configs(settings)}
    assert servers == {
        "default": ("10.0.0.5", 5038, "bridge", "shared"),
        "east": ("10.0.1.5", 5038, "bridge", "east%secret"),  # no interpolation of '%'
        "west": ("10.0.2.6", 5039, "west-bridge", "west-secret"),  # the flag moved its host
        "north": ("::1", 5040, "bridge", "north-secret"),
    }
    shown = repr(settings)
    assert not any(secret in shown for secret in ("shared", "east%secret", "north-secret"))
    assert session_settings(settings).registration_wait_s == 1.0
    env_only = config(environ={"AUDIOSOCKET_AMI": "a=pbx-a, b=pbx-b:5039"})
    assert [(c.name, c.host, c.port) for c in ami_configs(env_only)] == [
        ("a", "pbx-a", 5038), ("b", "pbx-b", 5039)]


@pytest.mark.parametrize("argv, file_text, message", [
    (["--ami", "pbx1"], None, "NAME=HOST"),
    (["--ami", "bad name=h"], None, "invalid AMI server name"),
    (["--ami-host", "h", "--ami", "default=h2"], None, "given twice"),
    ([], "[ami lonely]\nuser = x\n", "has no host"),
    ([], "[ami typo]\nhots = x\n", "unknown setting"),
])
def test_bad_ami_server_settings_are_reported(tmp_path, argv, file_text, message):
    if file_text is not None:
        (tmp_path / "b.ini").write_text(file_text)
        argv = [*argv, "--config", str(tmp_path / "b.ini")]
    with pytest.raises(ValueError, match=message):
        ami_configs(config(*argv))


def test_one_router_with_a_sink_per_server(tmp_path):
    settings = config("--storage", f"sqlite:///{tmp_path}/a.db", "--agi-listen", "127.0.0.1",
                      "--ami", "east=127.0.0.1:5101", "--ami", "west=localhost:5102")
    bridge = Bridge.from_config(settings, FakeEngine())
    try:
        router = bridge.ami_sink
        assert {name: sink.config.port for name, sink in router.servers.items()} == {
            "east": 5101, "west": 5102}
        assert all(sink.registrations is bridge.registrations for sink in router.servers.values())
        assert bridge.agi_server.locate_server == router.server_for_agi
    finally:
        bridge.storage.close()


def test_the_webhook_queues_calls_storage_has_and_its_secret_from_a_file(tmp_path):
    secret_file = tmp_path / "webhook.secret"
    secret_file.write_text("from-file\n")
    settings = config("--storage", f"sqlite:///{tmp_path}/a.db", "--webhook-url",
                      "http://127.0.0.1:8080/calls", "--webhook-secret-file", str(secret_file),
                      "--webhook-timeout", "3", "--metrics-listen", ":9401")
    options = webhook_options(settings)
    assert (options.url, options.secret, options.timeout_s, options.max_age_s) == (
        "http://127.0.0.1:8080/calls", "from-file", 3.0, 86400.0)
    assert "from-file" not in repr(options) and webhook_options(config()) is None
    bridge = Bridge.from_config(settings, FakeEngine())
    try:
        assert sink_names(bridge) == ["DurableStorageSink", "ConsoleSink", "BridgeMetrics",
                                      "CaptionHub", "AlertSink", "LiveCalls"]
        assert bridge.storage_sink.on_call_stored == [bridge.webhook.call_stored]
        assert bridge.metrics.webhook is bridge.webhook
        assert b"audiosocket_webhook_pending 0.0" in bridge.metrics.exposition()
    finally:
        bridge.storage.close()
