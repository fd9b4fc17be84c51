"""Reading commands from a pipe without starving signal handlers.

Python runs signal handlers only in the main thread, between bytecodes. A
SIGTERM that lands just before the main thread blocks in ``read()`` on stdin
would wait for the next input line, which on a pipe may never come. This
reader blocks in ``select()`` for at most ``poll`` seconds at a time, so a
handler always runs promptly. On a terminal ``input()`` (with line editing)
is used instead.
"""

import os
import select
import sys

POLL_SECONDS = 0.2


class PipeLines:
    """``input()``-like callable over a non-terminal stdin."""

    def __init__(self, stream=None, out=None, poll=POLL_SECONDS):
        self.fd = (stream or sys.stdin).fileno()
        self.out = out or sys.stdout
        self.poll = poll
        self.buffer = b""
        self.eof = False

    def __call__(self, prompt=""):
        self.out.write(prompt)
        self.out.flush()
        while b"\n" not in self.buffer and not self.eof:
            self._fill()
        if self.eof and not self.buffer:
            raise EOFError
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode("utf-8", "replace")

    def _fill(self):
        ready, _, _ = select.select([self.fd], [], [], self.poll)
        if not ready:
            return
        chunk = os.read(self.fd, 65536)
        if chunk:
            self.buffer += chunk
        else:
            self.eof = True


def line_reader():
    """``input`` on a terminal, a PipeLines reader otherwise."""
    try:
        if sys.stdin.isatty():
            return input
    except (AttributeError, ValueError):
        pass
    return PipeLines()
