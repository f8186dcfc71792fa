"""srx/console.py: the live status line on a terminal, cut to its width where it says one."""
from __future__ import annotations

import io

import pytest

from srx import console


@pytest.mark.parametrize("columns, kept", [
    (80, 76),  # 76 characters and "...": 79, short of the last column (a line that fills it wraps on some terminals)
    (0, None),  # a terminal that says no size (a bare pseudo-terminal, a serial console): the whole line
    (20, None),  # too narrow to cut to anything useful
])
def test_the_status_line_fits_a_terminal_that_says_its_width(monkeypatch, columns: int, kept: int | None) -> None:
    """Cut to the terminal's width, in ASCII (a terminal whose locale is not UTF-8 cannot take an
    ellipsis character); a pty that says 0 columns cut every line to nothing until this was seen."""
    import os

    line = "    1.0s  total out 10.00 fps | door 0.0fps d0 p95 - NO SIGNAL | gate 10.0fps d0 p95 32ms | yard 9.8fps d1"
    monkeypatch.setattr(console.shutil, "get_terminal_size", lambda fallback=(0, 0): os.terminal_size((columns, 24)))
    out = io.StringIO()
    monkeypatch.setattr(console.sys, "stderr", out)
    assert console.status_line(line, tty=True)
    written = out.getvalue()
    shown = line[:kept] + "..." if kept else line
    assert written == "\r" + shown + "\x1b[K" and written.isascii()
    console.clear_status()  # a log line comes: the shown line is erased first, once
    console.clear_status()
    assert out.getvalue() == written + "\r\x1b[K"
