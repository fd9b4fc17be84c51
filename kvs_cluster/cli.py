"""Command line of run_cluster.py: options, start-up, clean shutdown.

Every process started is stopped on ``terminate``, end of input, Ctrl-C,
SIGTERM/SIGHUP and on any exception (try/finally, atexit and signal
handlers): SIGTERM to its process group, at most 5 s of waiting, SIGKILL.
With ``--backend docker`` the same paths stop and remove every container,
the network and the volumes the run made (see ``docker.py``).
"""

import argparse
import atexit
import signal
import sys

from . import procs, rpc
from .build import BuildError
from .cluster import Cluster
from .commands import CommandLoop
from .local import DEFAULT_HOST, make_backend
from .stdin_lines import line_reader


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="run_cluster.py",
        description="Start a kvs cluster and drive it with the CS380d event-trigger commands.")
    parser.add_argument("-c", "--clients", type=int, default=1, help="client proxies to start")
    parser.add_argument("-s", "--servers", type=int, default=1, help="servers to start")
    parser.add_argument("--backend", default="local", choices=["local", "docker"],
                        help="where processes run: local child processes (default) or one "
                             "Docker container per role (images from docker/build.sh)")
    parser.add_argument("--impl", default="rust", choices=["rust", "python-baseline"],
                        help="kvs binaries, or the Python baseline frontend.py/server.py")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help="address every process binds and everything connects to")
    parser.add_argument("--log-dir", help="where process logs go (default: a new temp dir)")
    parser.add_argument("--rpc-timeout", type=float, default=rpc.DEFAULT_TIMEOUT,
                        help="seconds before a harness call counts as failed")
    parser.add_argument("--startup-timeout", type=float, default=procs.PORT_WAIT_SECONDS,
                        help="seconds a process may take to open its port")
    parser.add_argument("--seed", type=int, help="seed of testKVS's random choices")
    parser.add_argument("--durable", action="store_true",
                        help="run every server with a data folder (kvs-server --data-dir): it "
                             "logs each change to disk before acknowledging it and a restarted "
                             "server recovers its pairs. Local: <log dir>/data-*/server-<id>, "
                             "kept after the run; docker: one volume per server, removed on "
                             "exit. Default: servers keep their pairs in memory only")
    args = parser.parse_args(argv)
    if args.clients < 0 or args.servers < 0:
        parser.error("-c and -s must not be negative")
    if args.backend != "local" and args.impl != "rust":
        parser.error("--impl %s runs only with --backend local" % args.impl)
    if args.durable and args.impl != "rust":
        parser.error("--durable needs the kvs servers: --impl %s keeps its pairs in memory only"
                     % args.impl)
    return args


class Cleanup:
    """Stops the backend's processes exactly once, however we leave."""

    def __init__(self, backend):
        self.backend = backend
        self.done = False
        atexit.register(self.run)

    def run(self):
        if self.done:
            return
        self.done = True
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        try:
            killed = self.backend.stop_all()
        except procs.StartError as exc:  # e.g. a docker resource that would not go
            print("error: clean-up: %s" % exc, file=sys.stderr)
            return
        if killed:
            print("warning: had to SIGKILL %s" % ", ".join(killed), file=sys.stderr)


def exit_on_signal(signum, _frame):
    """SIGTERM/SIGHUP: leave through the normal clean-up path."""
    raise SystemExit(128 + signum)


def start_and_loop(backend, args):
    """Prepares the backend, starts the cluster, runs the command loop."""
    description = backend.describe()
    if description:
        print(description)
    backend.prepare()
    cluster = Cluster(backend, args.rpc_timeout)
    cluster.start(args.clients, args.servers)
    CommandLoop(cluster, seed=args.seed).run(line_reader())


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    sys.stdout.reconfigure(line_buffering=True)
    backend = make_backend(args.backend, args.impl, args.host, args.log_dir,
                           args.startup_timeout, durable=args.durable)
    cleanup = Cleanup(backend)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    signal.signal(signal.SIGTERM, exit_on_signal)
    signal.signal(signal.SIGHUP, exit_on_signal)
    try:
        start_and_loop(backend, args)
        return 0
    except KeyboardInterrupt:
        print()
        return 130
    except (procs.StartError, BuildError) as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 1
    except rpc.CALL_ERRORS as exc:
        print("error: %s" % rpc.describe_error(exc), file=sys.stderr)
        return 1
    finally:
        cleanup.run()
