"""Backends that run every role as a local child process.

``LocalBackend`` runs the Rust binaries (kvs-frontend, kvs-server,
kvs-client), all bound to one host address. ``BaselineBackend`` runs the
Python reference frontend.py/server.py (localhost only, default ports) with
kvs-client, or this package's stdlib client proxy if kvs-client is not built.

Each process logs (stdout and stderr) to ``<log dir>/<name>.log``; the file
``<log dir>/pids`` lists ``name pid`` for every process started.

With ``durable=True`` (``--durable``) every kvs-server gets ``--data-dir
<log dir>/data-XXXX/server-<id>``: one fresh folder per run, one subfolder
per server id (a server started again under an id finds its folder), left
in place after the run. Without it the servers keep their pairs in memory:
a ``KVS_DATA_DIR`` in run_cluster.py's environment is not passed down to
them (every server would otherwise share, and fight over, that one folder).
"""

import os
import sys
import tempfile
import threading

from . import build, ports, procs
from .backend import Backend, UnknownServer

DEFAULT_HOST = "127.0.0.1"
#: not passed down to servers: a data folder is one process's (--durable gives each its own)
NOT_FOR_SERVERS_ENV = ("KVS_DATA_DIR",)
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class ProcessBackend(Backend):
    """Shared machinery: spawn, track, crash and stop local processes."""

    def __init__(self, host=DEFAULT_HOST, log_dir=None, startup_timeout=procs.PORT_WAIT_SECONDS,
                 durable=False):
        self.host = host
        self.log_dir = log_dir or tempfile.mkdtemp(prefix="kvs-cluster-")
        os.makedirs(self.log_dir, exist_ok=True)
        self.startup_timeout = startup_timeout
        self.durable = durable
        self._lock = threading.Lock()
        self._frontend = None
        self._servers = {}
        self._clients = {}
        self._all = []

    # -- what subclasses provide ------------------------------------------

    def frontend_argv(self):
        raise NotImplementedError

    def server_argv(self, server_id):
        raise NotImplementedError

    def client_argv(self, client_id):
        raise NotImplementedError

    # -- Backend -----------------------------------------------------------

    def describe(self):
        return "Process logs: %s" % self.log_dir

    def start_frontend(self):
        self._frontend = self._start("frontend", self.frontend_argv(), ports.FRONTEND_PORT)

    def start_server(self, server_id):
        env = {k: v for k, v in self._env().items() if k not in NOT_FOR_SERVERS_ENV}
        child = self._start("server-%d" % server_id, self.server_argv(server_id),
                            ports.server_port(server_id), env)
        with self._lock:
            self._servers[server_id] = child

    def start_client(self, client_id):
        child = self._start("client-%d" % client_id, self.client_argv(client_id),
                            ports.client_port(client_id))
        with self._lock:
            self._clients[client_id] = child

    def kill_server(self, server_id):
        procs.kill(self._take_server(server_id))

    def stop_server(self, server_id):
        child = self._take_server(server_id)
        if procs.wait_exit(child, procs.STOP_GRACE_SECONDS):
            return True
        procs.stop_all([child])
        return False

    def stop_all(self):
        with self._lock:
            children = [c for c in reversed(self._all) if c.running()]
            self._servers.clear()
            self._clients.clear()
        return procs.stop_all(children)

    def server_ids(self):
        with self._lock:
            return sorted(self._servers)

    def frontend_url(self):
        return ports.url(self.host, ports.FRONTEND_PORT)

    def client_url(self, client_id):
        return ports.url(self.host, ports.client_port(client_id))

    # -- helpers -----------------------------------------------------------

    def server_child(self, server_id):
        """The running server's Child (for tests and diagnostics), or None."""
        with self._lock:
            return self._servers.get(server_id)

    def _take_server(self, server_id):
        with self._lock:
            child = self._servers.pop(server_id, None)
        if child is None:
            raise UnknownServer("no running server with id %d" % server_id)
        return child

    def _start(self, name, argv, port, env=None):
        if procs.port_open(self.host, port):
            raise procs.StartError("%s:%d is already in use (is another cluster running "
                                   "on this address?)" % (self.host, port))
        log_path = os.path.join(self.log_dir, name + ".log")
        child = procs.spawn(name, argv, log_path, self.host, port,
                            env=self._env() if env is None else env)
        with self._lock:
            self._all.append(child)
        self._record_pid(child)
        try:
            procs.wait_for_port(child, self.startup_timeout)
        except procs.StartError:
            procs.stop_all([child], grace=1.0)
            raise
        return child

    def _record_pid(self, child):
        with open(os.path.join(self.log_dir, "pids"), "a", encoding="utf-8") as pids:
            pids.write("%s %d\n" % (child.name, child.pid))

    @staticmethod
    def _env():
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        return env


class LocalBackend(ProcessBackend):
    """The Rust binaries from ``target/release`` (or ``$KVS_BIN_DIR``)."""

    name = "local"

    def __init__(self, host=DEFAULT_HOST, log_dir=None, startup_timeout=procs.PORT_WAIT_SECONDS,
                 durable=False):
        super().__init__(host, log_dir, startup_timeout, durable)
        # A fresh folder per run, even when --log-dir is reused.
        self.data_root = (tempfile.mkdtemp(prefix="data-", dir=self.log_dir)
                          if durable else None)

    def describe(self):
        text = super().describe()
        if self.durable:
            text += "\nServer data: %s" % self.server_data_dir("<id>")
        return text

    def server_data_dir(self, server_id):
        """Data folder of server ``server_id`` (``--durable``), or None."""
        if self.data_root is None:
            return None
        return os.path.join(self.data_root, "server-%s" % server_id)

    def prepare(self):
        if build.build_wanted():
            build.cargo_build()
        build.require_binaries()

    def frontend_argv(self):
        return [build.binary("kvs-frontend"), "--bind", self.host,
                "--port", str(ports.FRONTEND_PORT),
                "--server-url", "http://%s:{port}" % self.host]

    def server_argv(self, server_id):
        argv = [build.binary("kvs-server"), "--id", str(server_id), "--bind", self.host,
                "--port", str(ports.server_port(server_id))]
        if self.durable:
            argv += ["--data-dir", self.server_data_dir(server_id)]
        return argv

    def client_argv(self, client_id):
        return rust_client_argv(self.host, client_id)


def rust_client_argv(host, client_id):
    """kvs-client bound to ``host``, talking to the frontend on ``host``."""
    return [build.binary("kvs-client"), "--id", str(client_id), "--bind", host,
            "--port", str(ports.client_port(client_id)),
            "--frontend", ports.url(host, ports.FRONTEND_PORT)]


def python_client_argv(host, client_id):
    """This package's stdlib client proxy, same flags as kvs-client."""
    return [sys.executable, os.path.join(PACKAGE_DIR, "client_proxy.py"),
            "--id", str(client_id), "--bind", host,
            "--port", str(ports.client_port(client_id)),
            "--frontend", ports.url(host, ports.FRONTEND_PORT)]


def baseline_dir():
    """Where frontend.py and server.py of the Python baseline live."""
    default = os.path.join(build.REPO_ROOT, os.pardir, "shared", "baseline")
    return os.path.abspath(os.environ.get("KVS_BASELINE_DIR") or default)


class BaselineBackend(ProcessBackend):
    """The Python reference frontend/servers; kvs-client or a stdlib proxy."""

    name = "local"

    def __init__(self, host=DEFAULT_HOST, log_dir=None, startup_timeout=procs.PORT_WAIT_SECONDS,
                 durable=False):
        if durable:
            raise ValueError("--durable needs the kvs servers: the Python baseline keeps its "
                             "pairs in memory only")
        super().__init__(host, log_dir, startup_timeout)

    def prepare(self):
        if self.host != DEFAULT_HOST:
            raise procs.StartError("--impl python-baseline listens on localhost only: "
                                   "use the default --host %s" % DEFAULT_HOST)
        for script in ("frontend.py", "server.py"):
            if not os.path.isfile(os.path.join(baseline_dir(), script)):
                raise procs.StartError("baseline %s not found in %s (set KVS_BASELINE_DIR)"
                                       % (script, baseline_dir()))

    def frontend_argv(self):
        return [sys.executable, os.path.join(baseline_dir(), "frontend.py"),
                "--port", str(ports.FRONTEND_PORT)]

    def server_argv(self, server_id):
        return [sys.executable, os.path.join(baseline_dir(), "server.py"), "-i", str(server_id)]

    def client_argv(self, client_id):
        if build.have_binary("kvs-client"):
            return rust_client_argv(self.host, client_id)
        return python_client_argv(self.host, client_id)


def make_backend(backend, impl, host, log_dir=None, startup_timeout=procs.PORT_WAIT_SECONDS,
                 durable=False):
    """The backend for ``--backend`` / ``--impl`` / ``--durable``."""
    if backend == "docker":
        if impl != "rust":
            raise ValueError("--impl %s runs only with --backend local" % impl)
        from .docker import DockerBackend  # only when asked for: it needs no import otherwise
        return DockerBackend(host=host, log_dir=log_dir, startup_timeout=startup_timeout,
                             durable=durable)
    if backend != "local":
        raise ValueError("unknown backend %r (local or docker)" % backend)
    classes = {"rust": LocalBackend, "python-baseline": BaselineBackend}
    if impl not in classes:
        raise ValueError("unknown implementation %r" % impl)
    return classes[impl](host=host, log_dir=log_dir, startup_timeout=startup_timeout,
                         durable=durable)
