"""The signals that end a long srx run cleanly: what was finished is kept, recordings are finalised,
training saves its state and a server stops its children.

SIGINT is Ctrl-C; SIGTERM a service manager's stop, `docker stop` or `kill`; SIGHUP the hangup of
the terminal srx runs in (the SSH session it was started from closed). A run that should outlive its
terminal runs under a service manager, `nohup`, `tmux` or `screen`, as any command does.
"""
from __future__ import annotations

import signal

#: every signal a command stops on as it does on Ctrl-C (SIGHUP where the platform has it)
STOP_SIGNALS: tuple[int, ...] = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None))
                                      if s is not None)

#: the same, without Ctrl-C: the signals that end srx as Ctrl-C does (SystemExit, not KeyboardInterrupt)
TERMINATING: tuple[int, ...] = tuple(s for s in STOP_SIGNALS if s != signal.SIGINT)
