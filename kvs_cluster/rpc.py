"""XML-RPC helpers: proxies that time out, reply parsing, error text.

``xmlrpc.client.ServerProxy`` is not thread-safe: make one per thread.
"""

import http.client
import xmlrpc.client

DEFAULT_TIMEOUT = 30.0
MAX_ERROR_CHARS = 300


class TimeoutTransport(xmlrpc.client.Transport):
    """A keep-alive transport whose socket operations give up after ``timeout`` s."""

    def __init__(self, timeout):
        super().__init__()
        self.timeout = timeout

    def make_connection(self, host):
        conn = super().make_connection(host)
        conn.timeout = self.timeout
        return conn


def proxy(url, timeout=DEFAULT_TIMEOUT):
    """A ServerProxy for ``url`` with a per-call timeout."""
    return xmlrpc.client.ServerProxy(url, transport=TimeoutTransport(timeout))


#: what a failed call can raise
CALL_ERRORS = (xmlrpc.client.Error, OSError, http.client.HTTPException)


def parse_pair(reply):
    """``"KEY:VALUE"`` -> (key, value) the way the course harness reads it.

    Raises ValueError if the reply is not two integers joined by ':'.
    """
    if not isinstance(reply, str):
        raise ValueError("reply %r is not a string" % (reply,))
    parts = reply.split(":")
    if len(parts) != 2:
        raise ValueError("reply %r is not KEY:VALUE" % reply)
    return int(parts[0]), int(parts[1])


def describe_error(exc):
    """A short one-line description of a failed call."""
    if isinstance(exc, xmlrpc.client.Fault):
        text = "fault %s: %s" % (exc.faultCode, exc.faultString)
    elif isinstance(exc, xmlrpc.client.ProtocolError):
        text = "HTTP %s %s from %s" % (exc.errcode, exc.errmsg, exc.url)
    else:
        text = "%s: %s" % (type(exc).__name__, exc)
    text = " ".join(text.split())
    if len(text) > MAX_ERROR_CHARS:
        text = text[:MAX_ERROR_CHARS] + "..."
    return text
