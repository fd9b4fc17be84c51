"""Helpers for the kvs pytest suite: run the real binaries, talk to them.

A ``LocalCluster`` starts kvs-frontend, kvs-server and kvs-client from
``target/release`` (or ``$KVS_BIN_DIR``), all bound to one 127.0.0.N address
so several clusters can run at once on the course's default ports, waits for
their ports, and stops every process it started by its Popen handle.
"""

import http.client
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import time
import xmlrpc.client
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from kvs_cluster import rpc  # noqa: E402  (the harness's own keep-alive proxy with a timeout)

BIN_DIR = Path(os.environ.get("KVS_BIN_DIR") or REPO / "target" / "release")
BINARIES = ("kvs-frontend", "kvs-server", "kvs-client")
FRONTEND_PORT = 8001
SERVER_BASE = 9000
CLIENT_BASE = 7000
RPC_TIMEOUT = 15.0
PORT_WAIT = 10.0
STOP_GRACE = 5.0

_HOST_SPAN = 200
_host_counter = itertools.count((os.getpid() * 7) % _HOST_SPAN)


class MissingBinary(Exception):
    """A kvs binary is not built."""


def binary(name):
    """Path of a kvs binary; MissingBinary telling to build it."""
    path = BIN_DIR / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise MissingBinary("%s is missing: run `cargo build --release` in %s first"
                            % (path, REPO))
    return str(path)


def port_open(host, port, timeout=0.2):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def next_host():
    """A 127.0.0.N address (N in 20..219) whose frontend port is free."""
    for _ in range(_HOST_SPAN):
        host = "127.0.0.%d" % (20 + next(_host_counter) % _HOST_SPAN)
        if not any(port_open(host, port) for port in (FRONTEND_PORT, SERVER_BASE, CLIENT_BASE)):
            return host
    raise RuntimeError("no free 127.0.0.N address")


def proxy(url, timeout=RPC_TIMEOUT):
    """A ServerProxy for ``url`` whose calls give up after ``timeout`` seconds."""
    return rpc.proxy(url, timeout)


class Proc:
    """One started process, its log and address."""

    def __init__(self, name, popen, log_path, host, port):
        self.name = name
        self.popen = popen
        self.log_path = log_path
        self.host = host
        self.port = port

    def log(self):
        try:
            return Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines=30):
        return "\n".join(self.log().splitlines()[-lines:])

    def alive(self):
        return self.popen.poll() is None


def wait_for_port(proc, timeout=PORT_WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError("%s exited with %s before listening:\n%s"
                               % (proc.name, proc.popen.returncode, proc.tail()))
        if port_open(proc.host, proc.port):
            return
        time.sleep(0.05)
    raise RuntimeError("%s did not listen on %s:%d within %.0f s:\n%s"
                       % (proc.name, proc.host, proc.port, timeout, proc.tail()))


def stop_procs(procs):
    """SIGTERM every live process, wait at most STOP_GRACE s, then SIGKILL."""
    for proc in procs:
        if proc.alive():
            proc.popen.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    for proc in procs:
        try:
            proc.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait()


def wait_exit(proc, timeout):
    """The exit code, or None if still running after timeout seconds."""
    try:
        return proc.popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


class LocalCluster:
    """The real binaries on one 127.0.0.N address."""

    def __init__(self, host, log_dir):
        self.host = host
        self.log_dir = str(log_dir)
        self.procs = []
        self.servers = {}
        self.clients = {}
        self.frontend_proc = None

    def url(self, port, path=""):
        return "http://%s:%d%s" % (self.host, port, path)

    @property
    def frontend_url(self):
        return self.url(FRONTEND_PORT)

    def _start(self, name, argv, port):
        log_path = os.path.join(self.log_dir, name + ".log")
        with open(log_path, "ab") as log:
            popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        proc = Proc(name, popen, log_path, self.host, port)
        self.procs.append(proc)
        wait_for_port(proc)
        return proc

    def start_frontend(self):
        argv = [binary("kvs-frontend"), "--bind", self.host, "--port", str(FRONTEND_PORT),
                "--server-url", "http://%s:{port}" % self.host]
        self.frontend_proc = self._start("frontend", argv, FRONTEND_PORT)
        return self.frontend_proc

    def start_server(self, server_id, add=True):
        """Starts server server_id; adds it to the frontend unless add=False."""
        argv = [binary("kvs-server"), "-i", str(server_id), "--bind", self.host]
        proc = self._start("server-%d" % server_id, argv, SERVER_BASE + server_id)
        self.servers[server_id] = proc
        if add:
            assert self.frontend().addServer(server_id) == "Success"
        return proc

    def start_client(self, client_id):
        argv = [binary("kvs-client"), "-i", str(client_id), "--bind", self.host,
                "--frontend", self.frontend_url]
        proc = self._start("client-%d" % client_id, argv, CLIENT_BASE + client_id)
        self.clients[client_id] = proc
        return proc

    def frontend(self, path=""):
        return proxy(self.url(FRONTEND_PORT, path))

    def server(self, server_id, path=""):
        return proxy(self.url(SERVER_BASE + server_id, path))

    def client(self, client_id, path=""):
        return proxy(self.url(CLIENT_BASE + client_id, path))

    def logs(self):
        return "\n".join("--- %s ---\n%s" % (p.name, p.tail()) for p in self.procs)

    def close(self):
        stop_procs(list(reversed(self.procs)))


def raw_post(host, port, body, path="/RPC2", timeout=RPC_TIMEOUT, headers=None):
    """POSTs body (bytes) with http.client; returns (status, reply bytes)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        all_headers = {"Content-Type": "text/xml"}
        all_headers.update(headers or {})
        conn.request("POST", path, body, all_headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def http_get(host, port, path, timeout=RPC_TIMEOUT):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def post_oversized(host, port, size, timeout=RPC_TIMEOUT):
    """Sends a POST with a ``size``-byte body over a raw socket.

    The server may answer and close before the body is all sent, so sending
    errors are tolerated. Returns the status code of the reply, or None if no
    reply came (the connection was closed or reset without one).
    """
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        head = ("POST /RPC2 HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: text/xml\r\n"
                "Content-Length: %d\r\n\r\n" % (host, port, size)).encode()
        sock.sendall(head)
        _send_filler(sock, size)
        return _read_status(sock)
    finally:
        sock.close()


def _send_filler(sock, size):
    chunk = b"<" * 65536
    sent = 0
    try:
        while sent < size:
            part = chunk[:min(len(chunk), size - sent)]
            sock.sendall(part)
            sent += len(part)
    except (BrokenPipeError, ConnectionResetError):
        pass


def _read_status(sock):
    data = b""
    try:
        while b"\r\n" not in data:
            part = sock.recv(4096)
            if not part:
                break
            data += part
    except (ConnectionResetError, socket.timeout):
        pass
    if not data.startswith(b"HTTP/1."):
        return None
    return int(data.split(b" ", 2)[1])


def fault_of(reply_bytes):
    """The Fault an XML-RPC reply body carries; AssertionError if none."""
    try:
        xmlrpc.client.loads(reply_bytes)
    except xmlrpc.client.Fault as fault:
        return fault
    raise AssertionError("expected a fault, got %r" % reply_bytes[:300])


def our_processes(host):
    """(pid, cmdline) of live kvs-* / run_cluster processes whose cmdline names host."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        cmdline = cmdline_of(int(entry))
        if cmdline and mentions(cmdline, host) and any(b in cmdline for b in BINARIES):
            found.append((int(entry), cmdline))
    return found


def mentions(text, host):
    """True if text names host exactly (127.0.0.2 is not 127.0.0.20)."""
    return re.search(r"(?<![\d.])%s(?![\d])" % re.escape(host), text) is not None


def cmdline_of(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            raw = f.read()
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""
    if state == "Z":
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")
