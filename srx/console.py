"""The live status line a long command keeps on a terminal (`srx stream`'s fps and drops, once a
second), and the log lines that come between its updates.

On a terminal the line is redrawn in place (a carriage return, the text, erase to the end), cut to
the terminal's width, since a line that wraps can no longer be taken back and every redraw would
scroll. A log line that comes while it is shown first erases it (`clear_status`, from the CLI's
log handler), so a warning starts at the left edge rather than after the status text; the next
update draws the line again. Elsewhere (a pipe, a file, the journal) each update is a line of its own.
"""
from __future__ import annotations

import errno
import shutil
import sys

#: a write to stdout or stderr that fails with these finds its reader gone: a terminal that hung up, a closed pipe
GONE_ERRNOS = (errno.EIO, errno.EPIPE)

_shown = [False]  # a status line is on the terminal now, not yet ended by a newline
#: a terminal narrower than this (or one that says it has no width) gets the whole line
MIN_WIDTH = 40


def status_line(line: str, tty: bool) -> bool:
    """Show `line` as the status: in place on a terminal, cut to its width; else as a line of its
    own. False once stderr is gone (see status_write)."""
    if not tty:
        return status_write(line + "\n")
    width = shutil.get_terminal_size((0, 0)).columns  # 0: a terminal that does not say (a serial console, a bare pty)
    if width >= MIN_WIDTH and len(line) >= width:
        line = line[:width - 4] + "..."
    return status_write("\r" + line + "\x1b[K")


def stderr_tty() -> bool:
    """Whether stderr is a terminal; False where it is closed (`2>&-`: Python's sys.stderr is None,
    and `srx stream` failed on it after its run, its summary and JSON lost)."""
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (OSError, ValueError):
        return False


def status_write(text: str) -> bool:
    """Write the status text to stderr; False once stderr is gone (the terminal hung up: a write
    fails with EIO), and the loop then stops writing it. The run goes on to its clean stop (SIGHUP
    comes with a hangup)."""
    if sys.stderr is None:  # closed from the start (2>&-)
        return False
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except ValueError:  # a closed file
        return False
    except OSError as exc:  # the terminal or pipe is gone (EIO, EPIPE); anything else: this line is lost, not the next
        return exc.errno not in GONE_ERRNOS
    _shown[0] = text.startswith("\r") and not text.endswith("\n")
    return True


def clear_status() -> None:
    """Erase a status line that is shown, before another line is written to the terminal."""
    if not _shown[0]:
        return
    _shown[0] = False
    try:
        sys.stderr.write("\r\x1b[K")
    except (AttributeError, OSError, ValueError):  # AttributeError: no stderr at all (2>&-)
        pass
