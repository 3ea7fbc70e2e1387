"""The webhook's rules without sockets or databases: backoff, Retry-After, what an answer means,
the signature, the URL check."""
import hashlib
import hmac
from datetime import datetime, timezone

import pytest

from audiosocket_bridge.outputs.webhook_policy import (DELIVERED, FAILED, RETRY, Backoff,
                                                       PostResult, WebhookOptions, check_url,
                                                       classify, judge, next_delay_s,
                                                       retry_after_s, shown_url, signature)

NOW = datetime(2026, 12, 1, 9, 0, 0, tzinfo=timezone.utc)
OPTIONS = WebhookOptions(url="https://example.com/hook", secret="k", max_age_s=3600.0,
                         backoff=Backoff(base_s=1.0, cap_s=300.0))


def test_backoff_doubles_from_its_base_to_its_cap_within_the_upper_half():
    backoff = Backoff(base_s=1.0, cap_s=300.0)
    assert [backoff.delay_s(n, lambda: 1.0) for n in (1, 2, 3, 4, 9, 10, 30)] == [
        1.0, 2.0, 4.0, 8.0, 256.0, 300.0, 300.0]
    assert [backoff.delay_s(n, lambda: 0.0) for n in (1, 2, 10)] == [0.5, 1.0, 150.0]


@pytest.mark.parametrize("status, expected", [
    (200, DELIVERED), (201, DELIVERED), (204, DELIVERED), (299, DELIVERED),
    (None, RETRY), (408, RETRY), (429, RETRY), (500, RETRY), (502, RETRY), (503, RETRY),
    (599, RETRY),
    (301, FAILED), (302, FAILED), (400, FAILED), (401, FAILED), (404, FAILED), (410, FAILED),
    (413, FAILED), (422, FAILED),
])
def test_classify(status, expected):
    assert classify(status) == expected


def test_retry_after_in_seconds_or_as_a_date_on_429_and_503_only():
    assert retry_after_s(429, "7", NOW) == 7.0
    assert retry_after_s(503, " 120 ", NOW) == 120.0
    assert retry_after_s(503, "Tue, 01 Dec 2026 09:00:30 GMT", NOW) == 30.0
    assert retry_after_s(503, "Tue, 01 Dec 2026 08:00:00 GMT", NOW) == 0.0  # in the past
    assert retry_after_s(503, "999999", NOW) == 3600.0  # capped
    assert retry_after_s(500, "7", NOW) is None
    assert retry_after_s(429, None, NOW) is None
    assert retry_after_s(429, "soon", NOW) is None


def test_the_wait_is_the_backoff_or_what_the_receiver_asked_if_longer():
    backoff = Backoff(base_s=1.0, cap_s=300.0)
    assert next_delay_s(backoff, 3, None, lambda: 1.0) == 4.0
    assert next_delay_s(backoff, 3, 60.0, lambda: 1.0) == 60.0
    assert next_delay_s(backoff, 3, 1.0, lambda: 1.0) == 4.0


def test_judge_a_success_a_permanent_error_and_a_retry():
    assert judge(PostResult(204), 1, 0.0, OPTIONS, NOW).state == DELIVERED
    failed = judge(PostResult(404, error="HTTP 404 Not Found"), 1, 0.0, OPTIONS, NOW)
    assert (failed.state, failed.error) == (FAILED, "HTTP 404 Not Found")
    refused = judge(PostResult(None, error="ConnectionRefusedError"), 2, 5.0, OPTIONS, NOW,
                    lambda: 1.0)
    assert (refused.state, refused.delay_s, refused.error) == (RETRY, 2.0, "ConnectionRefusedError")
    busy = judge(PostResult(503, retry_after="30"), 1, 0.0, OPTIONS, NOW, lambda: 1.0)
    assert (busy.state, busy.delay_s, busy.error) == (RETRY, 30.0, "HTTP 503")


def test_judge_gives_up_when_the_next_try_would_come_after_the_max_age():
    late = judge(PostResult(500), 12, 3500.0, OPTIONS, NOW, lambda: 1.0)
    assert late.state == FAILED and "gave up after 12 attempt(s)" in late.error
    assert judge(PostResult(500), 1, 3500.0, OPTIONS, NOW, lambda: 1.0).state == RETRY


def test_signature_is_the_hex_hmac_sha256_of_the_body():
    body = b'{"uuid": "x"}\n'
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert signature("s3cret", body) == "sha256=" + expected
    assert signature("other", body) != signature("s3cret", body)


def test_the_secret_is_not_in_the_options_repr():
    assert "s3cret" not in repr(WebhookOptions(url="http://h/", secret="s3cret"))


@pytest.mark.parametrize("url", ["http://receiver.example/hook", "https://10.0.0.5:8443/x",
                                 "http://[::1]:9000/"])
def test_urls_accepted(url):
    assert check_url(url) == url


@pytest.mark.parametrize("url", ["ftp://host/x", "receiver.example/hook", "http://", "https:///x",
                                 "http://host:99999/", "mailto:a@b", "https://u:pw@host/x"])
def test_urls_refused(url):
    with pytest.raises(ValueError, match="webhook URL"):
        check_url(url)


def test_logs_show_the_url_without_its_query_or_credentials():
    assert shown_url("https://crm.example/hooks/calls") == "https://crm.example/hooks/calls"
    assert shown_url("https://crm.example/h?token=abc#x") == "https://crm.example/h?***"
    assert shown_url("https://u:pw@crm.example:8443/h") == "https://***@crm.example:8443/h"
    with pytest.raises(ValueError) as refused:
        check_url("https://u:pw@crm.example/h")
    assert "pw" not in str(refused.value)
