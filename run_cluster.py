#!/usr/bin/env python3
"""The kvs event trigger: start a cluster, then read the course's commands.

    python3 run_cluster.py -c CLIENTS -s SERVERS [--host IP] [--impl rust|python-baseline]

Starts the frontend, then each server (followed by ``frontend.addServer(id)``),
then the client proxies, and reads commands at ``Enter a command: ``:
addClient, addServer, listServer, killServer:ID, shutdownServer:ID, put:K:V,
get:K, printKVPairs:ID,
testKVS:keys:threads:requests:put_ratio:consistency:dup_range:crash:add:remove
and terminate. Commands may come from a pipe; end of input terminates.
See ``kvs_cluster`` for the details. Standard library only.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from kvs_cluster.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
