"""srx.words: the numbers in the sentences srx prints (a mutation audit found none of them tested on
their own: '72.0 days' for three days, or GiB of 10^9 bytes, would have passed)."""
from __future__ import annotations

import pytest

from srx.words import bytes_text, counted, duration_text, host_port, seconds_text, span_text


@pytest.mark.parametrize("n, said", [(0, "0 frames"), (1, "1 frame"), (2, "2 frames")])
def test_counted(n: int, said: str) -> None:
    assert counted(n, "frame") == said


@pytest.mark.parametrize("s, said", [(12.34, "12.3 s"), (0.95, "0.9 s"), (0.94, "0.94 s"), (0.04, "0.04 s"),
                                     (0.0, "0.0 s")])
def test_seconds_text(s: float, said: str) -> None:
    assert seconds_text(s) == said


@pytest.mark.parametrize("s, said", [(7 * 86400, "7d"), (3600, "1h"), (5400, "90m"), (45, "45s"), (1.5, "1.5 s")])
def test_duration_text(s: float, said: str) -> None:
    assert duration_text(s) == said


@pytest.mark.parametrize("s, said", [(849_938_009.5, "26.9 years"), (3 * 86400, "3.0 days"), (86400, "24.0 h"),
                                     (5400, "1.5 h"), (720, "12.0 min"), (59, "59.0 s"), (6.5, "6.5 s")])
def test_span_text(s: float, said: str) -> None:
    assert span_text(s) == said


@pytest.mark.parametrize("n, said", [(1023, "1023 bytes"), (1024, "1 KiB"), (512 << 10, "512 KiB"),
                                     (1 << 30, "1 GiB"), (10 ** 9, "954 MiB"), (int(1.5 * (1 << 40)), "1.5 TiB")])
def test_bytes_text_counts_in_powers_of_1024(n: int, said: str) -> None:
    assert bytes_text(n) == said


def test_host_port() -> None:
    assert host_port("10.0.0.5", 8080) == "10.0.0.5:8080" and host_port("::1", 8080) == "[::1]:8080"
