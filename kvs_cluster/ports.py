"""The course harness's fixed ports and the URLs built from them.

The frontend listens on 8001, server ``i`` on ``9000 + i`` and client
proxy ``i`` on ``7000 + i``; every role binds one host address.
"""

FRONTEND_PORT = 8001
SERVER_PORT_BASE = 9000
CLIENT_PORT_BASE = 7000


def server_port(server_id):
    """Port of server ``server_id``."""
    return SERVER_PORT_BASE + server_id


def client_port(client_id):
    """Port of client proxy ``client_id``."""
    return CLIENT_PORT_BASE + client_id


def url(host, port):
    """``http://host:port``."""
    return "http://%s:%d" % (host, port)
