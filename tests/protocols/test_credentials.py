"""redact_url: credentials never survive, everything else is left alone, and it never raises."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.credentials import redact_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("rtsp://admin:hunter2@10.0.0.2:554/s1", "rtsp://10.0.0.2:554/s1"),
        ("rtsp://admin@cam/live", "rtsp://cam/live"),
        ("rtsp://a:p@ss@cam/x", "rtsp://cam/x"),  # '@' inside the password
        (
            "rtsp://cam/s?user=a&password=b&ch=1",
            "rtsp://cam/s?user=REDACTED&password=REDACTED&ch=1",
        ),
        (
            "https://cdn/v.m3u8?X-Amz-Signature=abc#t",
            "https://cdn/v.m3u8?X-Amz-Signature=REDACTED#t",
        ),
        ("rtsp://u:p@[::1", "rtsp://[::1"),  # urlsplit refuses it; the fallback still strips
        ("rtsp://cam.local:554/stream1", "rtsp://cam.local:554/stream1"),
        ("/videos/a b.mp4", "/videos/a b.mp4"),
        ("synthetic://shapes?fps=30", "synthetic://shapes?fps=30"),
        ("synthetic://640x360@15", "synthetic://640x360@15"),  # "@" separates the fps here
        ("world://384@15", "world://384@15"),
        ("udp://@:5000", "udp://@:5000"),  # no user-info: FFmpeg's "receive on port 5000"
        ("udp://@239.0.0.1:1234?pkt_size=1316", "udp://@239.0.0.1:1234?pkt_size=1316"),
        (
            "srt://@:9000?passphrase=x&mode=listener",
            "srt://@:9000?passphrase=REDACTED&mode=listener",
        ),
        ("rtsp://:secret@cam/x", "rtsp://cam/x"),  # a password without a user name
        ("rtsp://@u:p@cam/x", "rtsp://cam/x"),
        ("rtsp://@u:p@[::1", "rtsp://[::1"),  # the fallback keeps nothing before the last '@'
        ("udp://@[::1", "udp://@[::1"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@given(st.text(max_size=60))
def test_never_raises_and_is_idempotent(url: str) -> None:
    once = redact_url(url)
    assert redact_url(once) == once
    if "@" not in url and "=" not in url:
        assert once == url


@given(
    st.from_regex(
        r"[a-z]{2,5}://[a-z]{1,8}:[a-z0-9]{4,10}@[a-z.]{1,12}(/[a-z]{0,6})?", fullmatch=True
    )
)
def test_user_info_is_always_removed(url: str) -> None:
    secret = url.split("://", 1)[1].split("@", 1)[0]
    assert secret not in redact_url(url)
