"""Reading the bridge's /metrics and /healthz over HTTP, and the samples of a scrape."""
import asyncio
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def http_get(address, path):
    """(status, body) with urllib in a thread (the server runs on the test's loop)."""
    def fetch():
        url = f"http://{address[0]}:{address[1]}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
    return asyncio.to_thread(fetch)


def samples(text):
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found, name, **labels):
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(bridge):
    status, body = await http_get(bridge.metrics_server.address, "/metrics")
    assert status == 200
    return samples(body)
