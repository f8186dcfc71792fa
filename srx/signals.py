"""The signals that end a long srx run cleanly: what was finished is kept, recordings are finalised,
training saves its state and a server stops its children.

SIGINT is Ctrl-C; SIGTERM a service manager's stop, `docker stop` or `kill`; SIGHUP the hangup of
the terminal srx runs in (the SSH session it was started from closed). A run that should outlive its
terminal runs under a service manager, `nohup`, `tmux` or `screen`, as any command does: a SIGHUP that
the process was started ignoring (`nohup`) stays ignored (`stop_signals`).

A stop signal that comes again may ask to give up at once (Ctrl-C pressed twice), but not every
repeat is a second request (`second_request`): a hangup reaches a job run from a login shell twice,
once from the kernel and once forwarded by the shell, and `timeout` signals its child and then the
child's group.

After a hangup the terminal takes no more output (a write fails with EIO), so the stop handlers call
`hung_up(signum)`: the standard streams that were the terminal when the command began
(`note_terminal`, from `srx.cli.app.main`) are pointed at /dev/null, and the clean stop's summary or
progress bar's last line cannot fail it.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from typing import Any, Iterator

log = logging.getLogger("srx")

#: every signal a command stops on as it does on Ctrl-C (SIGHUP where the platform has it)
STOP_SIGNALS: tuple[int, ...] = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None))
                                      if s is not None)

_HUP = getattr(signal, "SIGHUP", None)

#: a signal this soon after the first is the same request delivered twice, not a second one
REPEAT_WITHIN_S = 1.0

#: the standard streams (1, 2) that were a terminal when the command began (note_terminal)
_terminal_fds: list[int] = []


def stop_signals() -> tuple[int, ...]:
    """STOP_SIGNALS less a SIGHUP this process ignores (started under `nohup`, to outlive its terminal)."""
    return tuple(s for s in STOP_SIGNALS if not (s == _HUP and signal.getsignal(s) == signal.SIG_IGN))


def second_request(signum: int, first_at: float | None) -> bool:
    """Whether `signum`, coming while a stop begun at `first_at` (time.monotonic()) is under way, asks
    again (and may give up the clean stop): not a SIGHUP (a hangup comes twice from a login shell, and
    no one is at a terminal that is gone), nor anything within REPEAT_WITHIN_S of the first (the same
    request delivered twice). Safe in a handler."""
    if first_at is None or signum == _HUP:
        return False
    return time.monotonic() - first_at >= REPEAT_WITHIN_S


@contextlib.contextmanager
def stop_deferred() -> Iterator[None]:
    """Hold a stop signal back for the few statements inside and handle it at their end, as its
    handler would have: made for a temporary file being created and its name handed to the cleanup
    that removes it (a stop between the two left the file behind). In the main thread, where Python
    runs signal handlers; handlers that are not Python functions (ignored, default) are left as they are."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []
    handlers = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    for s, handler in handlers.items():
        if callable(handler):
            signal.signal(s, lambda signum, frame: came.append(signum))
    try:
        yield
    finally:
        for s, handler in handlers.items():
            if callable(handler):
                signal.signal(s, handler)
        for s in came[:1]:
            handlers[s](s, None)  # type: ignore[operator]  (callable: only those were held)


def terminating() -> tuple[int, ...]:
    """stop_signals() without Ctrl-C: what ends the other commands as SystemExit, through their cleanup."""
    return tuple(s for s in stop_signals() if s != signal.SIGINT)


def note_terminal() -> None:
    """At the start of a command: which of stdout and stderr are a terminal (after a hangup the
    terminal no longer says so)."""
    _terminal_fds[:] = [fd for fd in (1, 2) if _isatty(fd)]


def hung_up(signum: int) -> None:
    """From a stop handler: for SIGHUP, the standard streams that were the terminal now write to
    /dev/null (once). Only system calls: safe in a handler."""
    if signum != _HUP or not _terminal_fds:
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in _terminal_fds:
            os.dup2(null, fd)
    finally:
        os.close(null)
    _terminal_fds.clear()


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


class StoppedEarly(SystemExit):
    """A stop (Ctrl-C, SIGTERM, SIGHUP) that came before the stream loop began: while the model
    loaded or a camera opened. The run ends through its cleanup, exit 0, as a stop during the
    stream does (a service stopped just after its start is not a failure); `name` says which signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(0)
        self.name = signal.Signals(signum).name


class _WindDown:
    """The SIGINT/SIGTERM/SIGHUP handler around a whole stream command (`stopping_signals`), its
    set-up and its summary: a stop before the loop starts ends the command cleanly (StoppedEarly,
    exit 0; SIGTERM there was exit 143, which systemd counts as a failure, Ctrl-C 130); once the
    loop has stopped (`_Signals` sets `stopping`), a further SIGTERM (a second `kill`, a supervisor's
    repeat) is noted and ignored, so the outputs are finalised and the summary and --json-summary
    written; a second Ctrl-C still interrupts at once."""

    def __init__(self, before: Any) -> None:
        self.before, self.stopping = before, False

    def __call__(self, signum: int, frame: Any) -> None:
        hung_up(signum)
        if self.stopping:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            log.warning("already stopping: finishing the outputs and the summary")
            return
        self.stopping = True
        raise StoppedEarly(signum)


@contextlib.contextmanager
def stopping_signals() -> Iterator[None]:
    """Around a stream command, its summary included (_WindDown). Only in the main thread; the
    handlers before are back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sigs = stop_signals()
    handler = _WindDown({sig: signal.getsignal(sig) for sig in sigs})
    for sig in sigs:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig in sigs:
            signal.signal(sig, handler.before[sig])
