#!/usr/bin/env python3
"""A tiny stdlib client proxy: put/get forwarded to the frontend.

Stands in for kvs-client when the Rust binaries are not built (with
``--impl python-baseline``). Same flags as kvs-client::

    python3 client_proxy.py -i ID [--bind IP] [--port P] [--frontend URL]

Listens on ``--bind`` (default 127.0.0.1), port ``--port`` (default
7000+ID), on the paths ``/`` and ``/RPC2``; replies and faults of the
frontend are passed back unchanged. One thread per connection, HTTP/1.1
keep-alive, one frontend proxy per thread. Exits 0 on SIGTERM.
"""

import argparse
import os
import signal
import sys
import threading
import xmlrpc.client
from socketserver import ThreadingMixIn
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

CLIENT_PORT_BASE = 7000


class KeepAliveHandler(SimpleXMLRPCRequestHandler):
    """Keeps connections open between calls; serves / and /RPC2."""

    protocol_version = "HTTP/1.1"
    rpc_paths = ("/", "/RPC2")


class ThreadedXMLRPCServer(ThreadingMixIn, SimpleXMLRPCServer):
    """One thread per connection."""

    daemon_threads = True
    allow_reuse_address = True


class Forwarder:
    """put/get, forwarded to the frontend through a per-thread proxy."""

    def __init__(self, frontend_url):
        self.frontend_url = frontend_url
        self.local = threading.local()

    def _frontend(self):
        proxy = getattr(self.local, "proxy", None)
        if proxy is None:
            proxy = self.local.proxy = xmlrpc.client.ServerProxy(self.frontend_url)
        return proxy

    def put(self, key, value):
        return self._frontend().put(key, value)

    def get(self, key):
        return self._frontend().get(key)


def parse_args(argv):
    parser = argparse.ArgumentParser(description="stdlib kvs client proxy")
    parser.add_argument("-i", "--id", type=int, dest="client_id",
                        default=os.environ.get("CLIENT_ID"))
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int)
    parser.add_argument("--frontend", default="http://localhost:8001")
    args = parser.parse_args(argv)
    if args.client_id is None:
        parser.error("a client id is needed: -i ID or CLIENT_ID")
    args.client_id = int(args.client_id)
    if args.port is None:
        args.port = CLIENT_PORT_BASE + args.client_id
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    server = ThreadedXMLRPCServer((args.bind, args.port), requestHandler=KeepAliveHandler,
                                  logRequests=False)
    server.register_instance(Forwarder(args.frontend))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("client proxy %d on %s:%d -> %s" % (args.client_id, args.bind, args.port,
                                               args.frontend), file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
