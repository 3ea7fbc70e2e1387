"""Prometheus /metrics and /healthz over HTTP, with a server and FakeEngine calls."""
import asyncio

from audiosocket_bridge import cli
from audiosocket_bridge.audiosocket.call import AUDIO_QUEUE_MAX_S
from audiosocket_bridge.config import BridgeConfig
from audiosocket_bridge.outputs.metrics import BridgeMetrics
from audiosocket_bridge.outputs.storage import open_storage
from audiosocket_bridge.testing.audiosocket_client import AudioSocketClient, message
from tests.support.bridges import bridge_under_test, caller, run
from tests.support.fake_engine import FakeEngine
from audiosocket_bridge.testing.ports import free_port
from tests.support.scrape import http_get, samples, scrape, value


def test_metrics_count_a_call(tmp_path):
    async def scenario():
        async with bridge_under_test(tmp_path, metrics=True) as bridge:
            before = await scrape(bridge)
            assert value(before, "audiosocket_active_calls") == 0
            assert value(before, "audiosocket_frames_received_total", kind="audio") == 0

            client = await caller(bridge).connect()
            await client.send_silence(1.2)  # 60 frames of 20 ms; FakeEngine: 1 final per second
            await asyncio.sleep(0.3)
            during = await scrape(bridge)
            assert value(during, "audiosocket_active_calls") == 1
            assert value(during, "audiosocket_connections_active") == 1
            assert value(during, "audiosocket_engine_active_streams") == 1
            await client.finish("hangup")
            assert await bridge.live.wait_ended(client.call_uuid, 5)

            after = await scrape(bridge)
            assert value(after, "audiosocket_active_calls") == 0
            assert value(after, "audiosocket_calls_started_total") == 1
            assert value(after, "audiosocket_calls_ended_total", reason="hangup") == 1
            assert value(after, "audiosocket_frames_received_total", kind="uuidframe") == 1
            assert value(after, "audiosocket_frames_received_total", kind="audio") == 60
            assert value(after, "audiosocket_frames_received_total", kind="hangup") == 1
            assert value(after, "audiosocket_received_bytes_total") == 19 + 60 * 323 + 3
            assert value(after, "audiosocket_transcripts_total", kind="final") == 2
            assert value(after, "audiosocket_transcripts_total", kind="partial") == 2
            assert value(after, "audiosocket_final_latency_seconds_count") == 2
            assert value(after, "audiosocket_engine_finals_total") == 2
            assert value(after, "audiosocket_storage_errors_total") == 0
            assert value(after, "audiosocket_connections_total") == 1
            assert value(after, "audiosocket_engine_behind") == 0
    run(scenario())


def test_metrics_count_bad_input_refusals_and_drops(tmp_path):
    async def scenario():
        # the feeder waits 0.5 s for a registration while 10.4 s of audio arrive at once: the
        # call's 10 s queue drops the oldest 0.4 s
        async with bridge_under_test(tmp_path, metrics=True, max_calls=1, registration_wait_s=0.5) as bridge:
            bad = await caller(bridge).connect(send_uuid=False)
            await bad.send_bytes(message(0x42, b"x"))
            assert await bad.wait_server_end(5)
            first = await caller(bridge).connect()
            await first.send_silence(AUDIO_QUEUE_MAX_S + 0.4)
            await asyncio.sleep(0.1)
            extra = await caller(bridge).connect()
            assert await extra.wait_server_end(5) and extra.server_hangup
            await first.finish("close")
            assert await bridge.live.wait_ended(first.call_uuid, 5)
            found = await scrape(bridge)
            assert value(found, "audiosocket_protocol_errors_total") == 1
            assert value(found, "audiosocket_connections_refused_total") == 1
            assert value(found, "audiosocket_connections_total") == 3
            assert value(found, "audiosocket_calls_ended_total", reason="closed") == 1
            assert value(found, "audiosocket_audio_dropped_chunks_total") >= 19
            assert 0.35 <= value(found, "audiosocket_audio_dropped_seconds_total") <= 0.45
    run(scenario())


def test_healthz_reports_engine_and_storage(tmp_path):
    async def scenario():
        async with bridge_under_test(tmp_path, metrics=True) as bridge:
            status, body = await http_get(bridge.metrics_server.address, "/healthz")
            assert (status, body) == (200, "ok\n")
            status, _ = await http_get(bridge.metrics_server.address, "/nope")
            assert status == 404
            bridge.storage.close()  # storage stops answering
            status, body = await http_get(bridge.metrics_server.address, "/healthz")
            assert status == 503 and "storage" in body
            bridge.storage = open_storage(f"sqlite:///{tmp_path}/calls.db")
            bridge.metrics.storage = bridge.storage
            bridge.engine.stop()  # engine thread gone
            status, body = await http_get(bridge.metrics_server.address, "/healthz")
            assert status == 503 and "engine" in body and "storage" not in body
    run(scenario())


def test_registries_are_independent():
    first, second = BridgeMetrics(), BridgeMetrics()
    first.calls_started.inc()
    assert first.registry.get_sample_value("audiosocket_calls_started_total") == 1
    assert second.registry.get_sample_value("audiosocket_calls_started_total") == 0


def test_metrics_listen_from_environment():
    settings = cli.load_config(cli.build_parser().parse_args([]),
                               {"AUDIOSOCKET_METRICS_LISTEN": "0.0.0.0:9400"})
    assert settings.metrics_listen == "0.0.0.0:9400"
    assert cli.load_config(cli.build_parser().parse_args([]), {}).metrics_listen is None
    flags = cli.build_parser().parse_args(["--metrics-listen", "127.0.0.1:9401"])
    assert cli.load_config(flags, {"AUDIOSOCKET_METRICS_LISTEN": "x:1"}).metrics_listen == "127.0.0.1:9401"


def test_serve_wires_metrics(tmp_path):
    listen, metrics_port = free_port(), free_port()
    settings = BridgeConfig(listen=f"127.0.0.1:{listen}", metrics_listen=f"127.0.0.1:{metrics_port}",
                            storage=f"sqlite:///{tmp_path}/calls.db", registration_wait=0.0)

    async def scenario():
        stop = asyncio.Event()
        serving = asyncio.create_task(cli.serve(settings, FakeEngine(), stop))
        for _ in range(100):
            try:
                status, body = await http_get(("127.0.0.1", metrics_port), "/healthz")
                break
            except OSError:
                await asyncio.sleep(0.05)
        assert (status, body) == (200, "ok\n")
        client = await AudioSocketClient("127.0.0.1", listen).connect()
        await client.send_silence(0.5)
        await client.finish("hangup")
        for _ in range(100):
            _, body = await http_get(("127.0.0.1", metrics_port), "/metrics")
            if value(samples(body), "audiosocket_calls_ended_total", reason="hangup") == 1:
                break
            await asyncio.sleep(0.05)
        found = samples(body)
        assert value(found, "audiosocket_calls_ended_total", reason="hangup") == 1
        assert value(found, "audiosocket_frames_received_total", kind="audio") == 25
        stop.set()
        await serving
    run(scenario())
