"""Cluster bookkeeping for the event trigger.

Hands out server and client ids in order from 0 (a killed or failed id is
never reused), starts processes through the backend, tells the frontend
about new servers, and gives each thread its own XML-RPC proxies.
"""

import random
import threading

from . import rpc


class Cluster:
    """One running kvs cluster, as seen by the harness."""

    def __init__(self, backend, rpc_timeout=rpc.DEFAULT_TIMEOUT, out=print):
        self.backend = backend
        self.rpc_timeout = rpc_timeout
        self.out = out
        self._lock = threading.Lock()
        self._next_server = 0
        self._next_client = 0
        self._clients = []
        self._local = threading.local()

    # -- start-up ----------------------------------------------------------

    def start(self, clients, servers):
        """Frontend, then each server (added to the frontend), then clients."""
        self.out("Starting the frontend...")
        self.backend.start_frontend()
        self.out("Starting servers...")
        for _ in range(servers):
            self.add_server()
        self.out("Starting clients...")
        for _ in range(clients):
            self.add_client()

    # -- proxies -----------------------------------------------------------

    def frontend(self):
        """This thread's proxy of the frontend."""
        proxy = getattr(self._local, "frontend", None)
        if proxy is None:
            proxy = self._local.frontend = self.new_proxy(self.backend.frontend_url())
        return proxy

    def client(self, client_id):
        """This thread's proxy of client ``client_id``."""
        proxies = getattr(self._local, "clients", None)
        if proxies is None:
            proxies = self._local.clients = {}
        if client_id not in proxies:
            proxies[client_id] = self.new_proxy(self.backend.client_url(client_id))
        return proxies[client_id]

    def random_client(self):
        """This thread's proxy of a random client; LookupError if there is none."""
        ids = self.client_ids()
        if not ids:
            raise LookupError("no client is running (use addClient)")
        return self.client(random.choice(ids))

    def new_proxy(self, url):
        """A fresh proxy with this cluster's timeout."""
        return rpc.proxy(url, self.rpc_timeout)

    # -- membership --------------------------------------------------------

    def add_server(self):
        """Starts the next server id and adds it; returns (id, frontend reply)."""
        server_id = self._take_id("_next_server")
        self.backend.start_server(server_id)
        return server_id, self.frontend().addServer(server_id)

    def add_client(self):
        """Starts the next client id; returns it."""
        client_id = self._take_id("_next_client")
        self.backend.start_client(client_id)
        with self._lock:
            self._clients.append(client_id)
        return client_id

    def ensure_clients(self, count):
        """Adds clients until there are at least ``count``."""
        while len(self.client_ids()) < count:
            self.add_client()

    def client_ids(self):
        with self._lock:
            return list(self._clients)

    def kill_server(self, server_id):
        """Crashes a server; the frontend is not told."""
        self.backend.kill_server(server_id)

    def shutdown_server(self, server_id):
        """frontend.shutdownServer, then waits for the process to go.

        Returns (reply, exited) where exited is None if this harness does not
        run that server, True if it exited by itself, False if it was stopped.
        """
        reply = self.frontend().shutdownServer(server_id)
        if server_id not in self.backend.server_ids():
            return reply, None
        return reply, self.backend.stop_server(server_id)

    def listed_servers(self):
        """Ids in frontend.listServer(), parsed the way the course does."""
        reply = self.frontend().listServer()
        return [int(part) for part in reply.split(",") if part.strip()]

    def victim(self):
        """Server to crash or remove: 0 if still there, else the first listed."""
        running = self.backend.server_ids()
        if 0 in running:
            return 0
        for server_id in self.listed_servers():
            if server_id in running:
                return server_id
        if running:
            return running[0]
        raise LookupError("no server is running")

    def _take_id(self, counter):
        with self._lock:
            value = getattr(self, counter)
            setattr(self, counter, value + 1)
            return value
