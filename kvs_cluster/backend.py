"""The backend interface: how run_cluster.py starts and stops processes.

The command loop and the testKVS workload only talk to a ``Backend``; a
local-process backend lives in ``local.py``, and Docker or Kubernetes
backends can be added beside it without touching the loop.
"""

import abc


class UnknownServer(LookupError):
    """The backend runs no server with that id."""


class NotSupported(RuntimeError):
    """This backend cannot make that fault (e.g. partitions need Docker)."""


class Backend(abc.ABC):
    """Starts, crashes and stops the processes of one cluster."""

    #: the name used by ``--backend``
    name = "abstract"

    def prepare(self):
        """Gets ready to start processes (build binaries, images...)."""

    def describe(self):
        """One line for the user about where to look (logs...), or ''."""
        return ""

    @abc.abstractmethod
    def start_frontend(self):
        """Starts the frontend; returns once it accepts connections."""

    @abc.abstractmethod
    def start_server(self, server_id):
        """Starts server ``server_id``; returns once it accepts connections."""

    @abc.abstractmethod
    def start_client(self, client_id):
        """Starts client proxy ``client_id``; returns once it accepts connections."""

    # -- faults only some backends can make (partitionServer, pauseServer, ...)

    def _unsupported(self, command):
        raise NotSupported("%s needs --backend docker (this is --backend %s)"
                           % (command, self.name))

    def partition_server(self, server_id):
        """Cuts server ``server_id`` off the network; it keeps running."""
        self._unsupported("partitionServer")

    def heal_server(self, server_id):
        """Reconnects a partitioned server under its name."""
        self._unsupported("healServer")

    def pause_server(self, server_id):
        """Freezes server ``server_id``."""
        self._unsupported("pauseServer")

    def resume_server(self, server_id):
        """Thaws a paused server."""
        self._unsupported("resumeServer")

    def kill_frontend(self):
        """Crashes the frontend (SIGKILL-like), keeping its data."""
        self._unsupported("killFrontend")

    def restart_frontend(self):
        """Starts a killed frontend again on its data; returns once it serves."""
        self._unsupported("restartFrontend")

    @abc.abstractmethod
    def kill_server(self, server_id):
        """Crashes server ``server_id`` (SIGKILL-like; the frontend is not told)."""

    @abc.abstractmethod
    def stop_server(self, server_id):
        """After a shutdownServer: waits for the server to exit, then makes sure.

        Returns True if it exited by itself, False if it had to be stopped.
        """

    @abc.abstractmethod
    def stop_all(self):
        """Stops every process this backend started. Safe to call twice."""

    @abc.abstractmethod
    def server_ids(self):
        """Sorted ids of the servers this backend runs."""

    @abc.abstractmethod
    def frontend_url(self):
        """URL at which the harness reaches the frontend."""

    @abc.abstractmethod
    def client_url(self, client_id):
        """URL at which the harness reaches client proxy ``client_id``."""
