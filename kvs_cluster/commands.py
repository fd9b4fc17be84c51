"""The event trigger's command loop.

Reads commands at ``Enter a command: `` (from a terminal or a pipe), splits
them on ':' and runs them against a Cluster. End of input ends the loop like
``terminate``. A command that fails prints one ``error: ...`` line and the
prompt comes back; an unknown command prints ``Unknown command``.
"""

from . import rpc, workload
from .backend import NotSupported, UnknownServer
from .procs import StartError

PROMPT = "Enter a command: "
WIRE_INT_MIN = -(2 ** 31)
WIRE_INT_MAX = 2 ** 31 - 1


class CommandError(Exception):
    """A command was malformed or could not be carried out."""


def parse_ints(args, names):
    """The integer arguments of a command, or CommandError."""
    if len(args) != len(names):
        raise CommandError("expected %d argument(s) (%s), got %d"
                           % (len(names), ":".join(names), len(args)))
    try:
        values = [int(arg) for arg in args]
    except ValueError:
        raise CommandError("arguments must be integers: %s" % ":".join(args)) from None
    if any(not WIRE_INT_MIN <= value <= WIRE_INT_MAX for value in values):
        raise CommandError("arguments must fit in 32 bits: %s" % ":".join(args))
    return values


class CommandLoop:
    """Dispatches the course's commands to a Cluster."""

    def __init__(self, cluster, out=print, seed=None):
        self.cluster = cluster
        self.out = out
        self.seed = seed
        self.handlers = {
            "addClient": self.add_client,
            "addServer": self.add_server,
            "listServer": self.list_server,
            "killServer": self.kill_server,
            "shutdownServer": self.shutdown_server,
            "put": self.put,
            "get": self.get,
            "printKVPairs": self.print_kv_pairs,
            "testKVS": self.test_kvs,
            # faults beyond the course's (--backend docker)
            "partitionServer": self.partition_server,
            "healServer": self.heal_server,
            "pauseServer": self.pause_server,
            "resumeServer": self.resume_server,
            "killFrontend": self.kill_frontend,
            "restartFrontend": self.restart_frontend,
        }

    def run(self, read=input):
        """Reads and runs commands until ``terminate`` or end of input."""
        while True:
            try:
                line = read(PROMPT)
            except EOFError:
                self.out("")
                return
            if not self.execute(line.strip()):
                return

    def execute(self, line):
        """Runs one command line; False once the loop should end."""
        if not line:
            return True
        name, *args = line.split(":")
        if name == "terminate":
            return False
        handler = self.handlers.get(name)
        if handler is None:
            self.out("Unknown command")
            return True
        try:
            handler(args)
        except (CommandError, UnknownServer, LookupError, StartError, ValueError,
                NotSupported) as exc:
            self.out("error: %s" % exc)
        except rpc.CALL_ERRORS as exc:
            self.out("error: %s" % rpc.describe_error(exc))
        except Exception as exc:  # keep the prompt alive whatever happens
            self.out("error: unexpected %s" % rpc.describe_error(exc))
        return True

    # -- commands ----------------------------------------------------------

    def add_client(self, args):
        parse_ints(args, [])
        client_id = self.cluster.add_client()
        self.out("Started client %d" % client_id)

    def add_server(self, args):
        parse_ints(args, [])
        server_id, reply = self.cluster.add_server()
        self.out("Started server %d: %s" % (server_id, reply))

    def list_server(self, args):
        parse_ints(args, [])
        self.out(self.cluster.frontend().listServer())

    def kill_server(self, args):
        (server_id,) = parse_ints(args, ["ID"])
        self.cluster.kill_server(server_id)
        self.out("Killed server %d" % server_id)

    def shutdown_server(self, args):
        (server_id,) = parse_ints(args, ["ID"])
        reply, exited = self.cluster.shutdown_server(server_id)
        self.out(reply)
        if exited is False:
            self.out("warning: server %d did not exit by itself; it was stopped" % server_id)

    def partition_server(self, args):
        (server_id,) = parse_ints(args, ["ID"])
        self.cluster.backend.partition_server(server_id)
        self.out("Partitioned server %d" % server_id)

    def heal_server(self, args):
        (server_id,) = parse_ints(args, ["ID"])
        self.cluster.backend.heal_server(server_id)
        self.out("Healed server %d" % server_id)

    def pause_server(self, args):
        (server_id,) = parse_ints(args, ["ID"])
        self.cluster.backend.pause_server(server_id)
        self.out("Paused server %d" % server_id)

    def resume_server(self, args):
        (server_id,) = parse_ints(args, ["ID"])
        self.cluster.backend.resume_server(server_id)
        self.out("Resumed server %d" % server_id)

    def kill_frontend(self, args):
        parse_ints(args, [])
        self.cluster.backend.kill_frontend()
        self.out("Killed frontend")

    def restart_frontend(self, args):
        parse_ints(args, [])
        self.cluster.backend.restart_frontend()
        self.out("Restarted frontend")

    def put(self, args):
        key, value = parse_ints(args, ["K", "V"])
        self.out(self.cluster.random_client().put(key, value))

    def get(self, args):
        (key,) = parse_ints(args, ["K"])
        self.out(self.cluster.random_client().get(key))

    def print_kv_pairs(self, args):
        (server_id,) = parse_ints(args, ["ID"])
        self.out(self.cluster.frontend().printKVPairs(server_id))

    def test_kvs(self, args):
        try:
            spec = workload.Spec.parse(args)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        workload.run_test_kvs(self.cluster, spec, self.out, self.seed)
