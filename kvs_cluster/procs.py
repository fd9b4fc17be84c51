"""Child-process plumbing for the local backends.

Every child runs in its own session (so a Ctrl-C at the terminal reaches only
``run_cluster.py``, which then stops the children itself), writes stdout and
stderr to one log file, and is stopped through its process group: SIGTERM,
a bounded wait, then SIGKILL.
"""

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass

STOP_GRACE_SECONDS = 5.0
PORT_WAIT_SECONDS = 10.0
TAIL_LINES = 20


class StartError(RuntimeError):
    """A process could not be started, or never opened its port."""


@dataclass
class Child:
    """One started process: what it is, its handle, its log, its address."""

    name: str
    popen: subprocess.Popen
    log_path: str
    host: str
    port: int

    @property
    def pid(self):
        return self.popen.pid

    def running(self):
        return self.popen.poll() is None


def spawn(name, argv, log_path, host, port, env=None, cwd=None):
    """Starts ``argv`` in a new session with output to ``log_path``."""
    try:
        with open(log_path, "ab") as log:
            popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env=env, cwd=cwd)
    except OSError as exc:
        raise StartError("cannot start %s (%s): %s" % (name, argv[0], exc)) from exc
    return Child(name, popen, log_path, host, port)


def port_open(host, port, timeout=0.2):
    """True if something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(child, timeout=PORT_WAIT_SECONDS):
    """Waits until ``child`` accepts connections; StartError if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = child.popen.poll()
        if code is not None:
            raise StartError("%s exited with code %s before opening %s:%d\n%s"
                             % (child.name, code, child.host, child.port, log_tail(child)))
        if port_open(child.host, child.port):
            return
        time.sleep(0.05)
    raise StartError("%s did not open %s:%d within %.0f s\n%s"
                     % (child.name, child.host, child.port, timeout, log_tail(child)))


def log_tail(child, lines=TAIL_LINES):
    """The last lines of a child's log, indented, for error messages."""
    try:
        with open(child.log_path, "rb") as log:
            text = log.read().decode("utf-8", "replace")
    except OSError as exc:
        return "  (no log: %s)" % exc
    tail = text.splitlines()[-lines:]
    header = "  --- last %d lines of %s ---" % (len(tail), child.log_path)
    return "\n".join([header] + ["  " + line for line in tail])


def signal_group(child, sig):
    """Sends ``sig`` to the child's process group if the child still runs."""
    if not child.running():
        return
    try:
        os.killpg(child.pid, sig)
    except ProcessLookupError:
        pass


def kill(child):
    """SIGKILLs the child (a crash) and reaps it."""
    signal_group(child, signal.SIGKILL)
    child.popen.wait()


def wait_exit(child, timeout):
    """Waits up to ``timeout`` seconds for the child to exit; True if it did."""
    try:
        child.popen.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


def stop_all(children, grace=STOP_GRACE_SECONDS):
    """SIGTERMs every child, waits at most ``grace`` s in all, SIGKILLs the rest.

    Returns the names of the children that had to be SIGKILLed.
    """
    for child in children:
        signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + grace
    killed = []
    for child in children:
        if not wait_exit(child, max(0.0, deadline - time.monotonic())):
            kill(child)
            killed.append(child.name)
    return killed
