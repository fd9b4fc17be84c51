"""A flood of idle connections and near-limit bodies against the frontend.

With its default bounds, the frontend is sent 4,000 idle connections and
then 500 connections each sending a body one byte short of the 2 MiB limit.
Meanwhile an ordinary client keeps calling it with Python's ``ServerProxy``:
every call must be answered. Afterwards the frontend's memory must come
back near where it started. The figures are printed (``-s``) and quoted in
the README.
"""

import resource
import socket
import threading
import time
import xmlrpc.client

import pytest

import kvstest

IDLE = 4000
BODIES = 500
MAX_BODY = 2 * 1024 * 1024
#: how far above its start the frontend's memory may stay once the flood is gone
SETTLED_SLACK_MB = 48
SETTLE_SECONDS = 20


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS for %d" % pid)


@pytest.fixture
def enough_files():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = IDLE + BODIES + 512
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip("the file limit (%d) is below %d" % (hard, need))
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Caller(threading.Thread):
    """An ordinary client calling put/get back to back until stopped."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url = url
        self.calls = 0
        self.errors = []
        self.stop = threading.Event()

    def run(self):
        proxy = xmlrpc.client.ServerProxy(self.url)
        key = 0
        while not self.stop.is_set():
            key = (key + 1) % 100
            try:
                assert proxy.put(key, key) == "Success"
                assert proxy.get(key) == "%d:%d" % (key, key)
                self.calls += 2
            except Exception as exc:  # every failure is reported, none hidden
                self.errors.append(repr(exc))
            time.sleep(0.01)


def test_idle_and_near_limit_floods_leave_clients_served_and_memory_returned(make_cluster, enough_files):
    c = make_cluster(servers=1, clients=0)
    pid = c.frontend_proc.popen.pid
    for key in range(100):
        c.frontend().put(key, key)
    time.sleep(0.5)
    start = rss_mb(pid)
    caller = Caller(c.frontend_url)
    caller.start()
    opened = []
    try:
        for _ in range(IDLE):
            opened.append(socket.create_connection((c.host, kvstest.FRONTEND_PORT), timeout=10))
        time.sleep(0.5)
        idle_peak = rss_mb(pid)
        replies = {}
        bodies = []
        head = b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n"
        for _ in range(BODIES):
            sock = socket.create_connection((c.host, kvstest.FRONTEND_PORT), timeout=10)
            sock.sendall(head % (MAX_BODY - 1))
            sock.settimeout(0.5)
            try:
                sock.sendall(b"x" * (MAX_BODY - 2))
            except OSError:
                pass  # refused (503) and closed while sending: counted below
            bodies.append(sock)
        time.sleep(0.5)
        bodies_peak = rss_mb(pid)
        for sock in bodies:
            sock.settimeout(0.05)
            try:
                status = sock.recv(12)[9:12] or b"closed"
            except (socket.timeout, OSError):
                status = b"held"
            replies[status] = replies.get(status, 0) + 1
        opened.extend(bodies)
    finally:
        for sock in opened:
            sock.close()
    deadline = time.monotonic() + SETTLE_SECONDS
    settled = rss_mb(pid)
    while settled > start + SETTLED_SLACK_MB and time.monotonic() < deadline:
        time.sleep(0.5)
        settled = rss_mb(pid)
    caller.stop.set()
    caller.join(10)
    print("\nfrontend RSS MB: start %.1f, %d idle %.1f, +%d near-limit bodies %.1f, after %.1f; "
          "body replies %s; ordinary calls %d, errors %d"
          % (start, IDLE, idle_peak, BODIES, bodies_peak, settled, replies, caller.calls, len(caller.errors)))
    assert not caller.errors, caller.errors[:5]
    assert caller.calls > 0
    assert replies.get(b"503", 0) > 0, replies
    assert settled <= start + SETTLED_SLACK_MB, (start, settled)
    assert c.frontend().get(5) == "5:5"
