"""XML-RPC helpers: proxies that time out, reply parsing, error text.

``xmlrpc.client.ServerProxy`` is not thread-safe: make one per thread.
When the cluster secret is set (``KVS_CLUSTER_SECRET``, or a file named by
``KVS_CLUSTER_SECRET_FILE``), every proxy shows it the way ``ServerProxy``
does from a ``http://user:secret@host`` URL (HTTP Basic), so ``addServer``
and ``shutdownServer`` are let through; the processes started by the
harness inherit the same variables.
"""

import http.client
import os
import urllib.parse
import xmlrpc.client

SECRET_ENV = "KVS_CLUSTER_SECRET"
SECRET_FILE_ENV = "KVS_CLUSTER_SECRET_FILE"

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


def cluster_secret():
    """The cluster secret from the environment, or None."""
    secret = os.environ.get(SECRET_ENV)
    if secret is None and os.environ.get(SECRET_FILE_ENV):
        with open(os.environ[SECRET_FILE_ENV], encoding="utf-8") as f:
            secret = f.read()
    secret = secret.strip() if secret is not None else None
    return secret or None


def with_secret(url, secret):
    """``url`` with ``kvs:SECRET@`` in front of its host (percent-encoded)."""
    parts = urllib.parse.urlsplit(url)
    netloc = "kvs:%s@%s" % (urllib.parse.quote(secret, safe=""), parts.netloc.rsplit("@", 1)[-1])
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def proxy(url, timeout=DEFAULT_TIMEOUT):
    """A ServerProxy for ``url`` with a per-call timeout (showing the
    cluster secret, if one is set)."""
    secret = cluster_secret()
    if secret is not None:
        url = with_secret(url, secret)
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
