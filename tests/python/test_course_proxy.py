"""A course-style client proxy, written from PROTOCOL.md, against kvs-frontend.

The course's client.py is a single-threaded SimpleXMLRPCServer on
``localhost:7000+id`` whose put/get forward to a ServerProxy of the frontend.
This stand-in does the same, bound to the test cluster's address.
"""

import threading
import xmlrpc.client
from xmlrpc.server import SimpleXMLRPCServer

import pytest

import kvstest


class CourseStyleProxy:
    """put/get forwarded to the frontend, results passed back unchanged."""

    def __init__(self, frontend_url):
        # The course uses a plain ServerProxy; a timeout keeps the test bounded.
        self.frontend = kvstest.proxy(frontend_url)

    def put(self, key, value):
        return self.frontend.put(key, value)

    def get(self, key):
        return self.frontend.get(key)


@pytest.fixture
def course_proxy(make_cluster):
    cluster = make_cluster(servers=2, clients=0)
    server = SimpleXMLRPCServer((cluster.host, kvstest.CLIENT_BASE + 5), logRequests=False)
    server.register_instance(CourseStyleProxy(cluster.frontend_url))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield cluster, kvstest.proxy(cluster.url(kvstest.CLIENT_BASE + 5))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_course_proxy_put_get(course_proxy):
    cluster, proxy = course_proxy
    for key in range(50):
        proxy.put(key, key * 2)
    for key in range(50):
        parts = proxy.get(key).split(":")
        assert int(parts[0]) == key and int(parts[1]) == key * 2
    assert cluster.frontend().get(49) == "49:98"


def test_course_proxy_passes_faults_back(course_proxy):
    _, proxy = course_proxy
    with pytest.raises(xmlrpc.client.Fault):
        proxy.get(123456)
    proxy.put(1, 1)
    assert proxy.get(1) == "1:1"
