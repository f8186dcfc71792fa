"""Small helpers for the sentences srx prints."""
from __future__ import annotations


def counted(n: int, noun: str) -> str:
    """'1 frame', '3 frames': a count with its noun in the right number (nouns that take an s)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
