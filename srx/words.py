"""Small helpers for the sentences srx prints."""
from __future__ import annotations


def counted(n: int, noun: str) -> str:
    """'1 frame', '3 frames': a count with its noun in the right number (nouns that take an s)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def seconds_text(s: float) -> str:
    """'12.3 s', '0.04 s': a length in seconds with a tenth's precision, and two significant digits
    under a second, so a short recording (one frame at 25 fps) does not read as '0.0 s'."""
    return f"{s:.1f} s" if s >= 0.95 or s <= 0 else f"{s:.2g} s"


def duration_text(s: float) -> str:
    """'7d', '1h', '90m', '45s': a length as a user writes it, in the largest unit it is a whole number of
    (seconds_text where it is none)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if s >= size and s % size == 0:
            return f"{int(s // size)}{unit}"
    return seconds_text(s)


def span_text(s: float) -> str:
    """'26.9 years', '3.2 days', '1.5 h', '12.0 min', '6.5 s': how far apart two times are, in the unit
    a reader takes in at once (a clock set by NTP after a boot in 2000 moved 849,938,009 s)."""
    year, day = 365.25 * 86400, 86400
    for unit, size, least in ((" years", year, 2 * year), (" days", day, 2 * day), (" h", 3600, 3600), (" min", 60, 60)):
        if s >= least:
            return f"{s / size:.1f}{unit}"
    return seconds_text(s)


def host_port(host: str, port: int) -> str:
    """host:port as written in a URL: an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bytes_text(n: float) -> str:
    """'512 KiB', '1.2 GiB': a size as `df -h` shows it, in powers of 1024."""
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} bytes"
