"""kvs_cluster: the event trigger behind ``run_cluster.py``.

A standard-library-only rebuild of the CS380d "event trigger": it starts a
kvs cluster (a frontend, servers, client proxies) through a pluggable
backend, then reads the course's commands at the prompt ``Enter a command: ``.

Modules:
    ports     -- the course's fixed ports and URLs
    procs     -- child-process plumbing (spawn, wait for a port, stop)
    build     -- ``cargo build`` and binary lookup for the Rust processes
    backend   -- the abstract ``Backend`` interface
    local     -- ``LocalBackend`` (Rust binaries) and ``BaselineBackend``
    rpc       -- XML-RPC proxies with timeouts, reply parsing
    cluster   -- cluster bookkeeping: ids, proxies, membership changes
    workload  -- the ``testKVS`` workload
    commands  -- the command loop
    stdin_lines -- signal-friendly reading of commands from a pipe
    cli       -- argument parsing, signal handling, ``main``
    client_proxy -- a tiny stdlib client proxy (used when kvs-client is absent)
"""
