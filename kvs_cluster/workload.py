"""The ``testKVS`` workload of the course's event trigger.

``testKVS:keys:threads:requests:put_ratio:consistency:dup_range:crash:add:remove``

1. Adds clients until there is one per thread; thread ``t`` uses client
   ``clientList[t]`` through its own XML-RPC proxy.
2. Load: keys ``0..keys-1`` are shuffled and cut into one equal slice per
   thread; each thread puts its slice, the values being a shuffled
   permutation of ``0..keys-1``. Prints ``Load throughput = <x>ops/sec``
   (keys put / seconds).
3. Run: ``requests // threads`` requests per thread.

   * consistency 0: the thread walks its slice; a fixed shuffled pattern of
     100 slots makes ``put_ratio`` percent of the requests puts (new values in
     ``keys..2*keys-1``) and the rest gets, which must return exactly the
     value the thread last put there (the loaded one unless it rewrote it).
   * consistency 1, dup_range 0: put a random value to a random key of the
     slice, then get it: exactly that value must come back.
   * consistency 1, dup_range D: all threads share keys ``0..D-1``; holding
     the key's lock a thread takes the key's next counter value (counters
     start at ``keys``) and puts it; then, without the lock, it gets the key:
     the value must be at least the one it put.
   * when thread 0 is halfway it crashes server 0 (crash=1), adds a server
     (add=1) or shuts server 0 down (remove=1); if server 0 is gone already,
     the first listed server is used instead.

   Prints ``Run throughput = <x>ops/sec`` (requests / seconds; in
   consistency 1 a request is one put plus one get).

Any failed call or wrong value prints one line starting with ``[Error`` and
stops that thread (for the rest of the test).
"""

import random
import threading
import time
from dataclasses import dataclass, fields

from . import rpc

USAGE = "testKVS:keys:threads:requests:put_ratio:consistency:dup_range:crash:add:remove"
PATTERN_SLOTS = 100
MAX_WIRE_INT = 2 ** 31 - 1


@dataclass(frozen=True)
class Spec:
    """The nine testKVS arguments."""

    keys: int
    threads: int
    requests: int
    put_ratio: int
    consistency: int
    dup_range: int
    crash: int
    add: int
    remove: int

    @classmethod
    def parse(cls, args):
        """Spec from the ':'-split arguments; ValueError with the reason."""
        names = [f.name for f in fields(cls)]
        if len(args) != len(names):
            raise ValueError("testKVS needs %d arguments, got %d: %s"
                             % (len(names), len(args), USAGE))
        try:
            spec = cls(*(int(arg) for arg in args))
        except ValueError:
            raise ValueError("testKVS arguments must be integers: %s" % USAGE) from None
        spec.validate()
        return spec

    def validate(self):
        """ValueError if the arguments cannot describe a run."""
        checks = [
            (self.threads >= 1, "threads must be at least 1"),
            (self.keys >= self.threads, "keys must be at least threads"),
            (self.requests >= 0, "requests must not be negative"),
            (0 <= self.put_ratio <= 100, "put_ratio is a percentage (0..100)"),
            (self.consistency in (0, 1), "consistency is 0 or 1"),
            (self.dup_range >= 0, "dup_range must not be negative"),
            (all(flag in (0, 1) for flag in (self.crash, self.add, self.remove)),
             "crash, add and remove are 0 or 1"),
            (2 * self.keys + self.requests <= MAX_WIRE_INT, "values would not fit 32 bits"),
        ]
        for ok, reason in checks:
            if not ok:
                raise ValueError(reason)

    @property
    def per_thread(self):
        """Run-phase requests of each thread."""
        return self.requests // self.threads


class ThreadFailed(Exception):
    """A call failed or returned a wrong value."""


class Shared:
    """What the workload threads share: spec, cluster, output, key locks, counters."""

    def __init__(self, spec, cluster, out):
        self.spec = spec
        self.cluster = cluster
        self.out = out
        self.print_lock = threading.Lock()
        self.key_locks = [threading.Lock() for _ in range(spec.dup_range)]
        self.counters = [spec.keys] * spec.dup_range
        self.stopped = threading.Event()

    def say(self, line):
        """Prints one line unless the test was abandoned."""
        if self.stopped.is_set():
            return
        with self.print_lock:
            self.out(line)

    def next_value(self, key):
        """The key's next counter value; call holding ``key_locks[key]``."""
        value = self.counters[key]
        self.counters[key] = value + 1
        return value


class Disruptor:
    """Thread 0's action halfway through the run phase."""

    def __init__(self, shared):
        self.spec = shared.spec
        self.cluster = shared.cluster
        self.shared = shared

    def __call__(self):
        actions = [(self.spec.crash, "crash", self._crash),
                   (self.spec.add, "add", self._add),
                   (self.spec.remove, "remove", self._remove)]
        for wanted, name, action in actions:
            if wanted:
                self._attempt(name, action)

    def _attempt(self, name, action):
        try:
            action()
        except Exception as exc:  # report any failure as a test error
            self.shared.say("[Error] %s in the middle of the run failed: %s"
                            % (name, rpc.describe_error(exc)))

    def _crash(self):
        server_id = self.cluster.victim()
        self.shared.say("Killing server %d (crash in the middle of the run)" % server_id)
        self.cluster.kill_server(server_id)

    def _add(self):
        self.shared.say("Adding a server (in the middle of the run)")
        server_id, reply = self.cluster.add_server()
        self.shared.say("Added server %d: %s" % (server_id, reply))

    def _remove(self):
        server_id = self.cluster.victim()
        self.shared.say("Shutting server %d down (in the middle of the run)" % server_id)
        reply, _ = self.cluster.shutdown_server(server_id)
        self.shared.say("Server %d shut down: %s" % (server_id, reply))


class Worker:
    """One workload thread: its client, its key slice, what it expects."""

    def __init__(self, index, client_id, keys, loaded, shared, seed):
        self.index = index
        self.client_id = client_id
        self.keys = keys
        self.spec = shared.spec
        self.cluster = shared.cluster
        self.shared = shared
        self.rng = random.Random(seed)
        self.expected = {key: loaded[key] for key in keys}
        self.pattern = self._pattern()
        self.failed = False
        self.proxy = None

    def _pattern(self):
        puts = self.spec.put_ratio * PATTERN_SLOTS // 100
        slots = [True] * puts + [False] * (PATTERN_SLOTS - puts)
        self.rng.shuffle(slots)
        return slots

    # -- phases ------------------------------------------------------------

    def guarded(self, phase):
        """Runs ``phase`` ("load" or "run"); the first failure stops this thread."""
        if self.failed or self.shared.stopped.is_set():
            return
        try:
            if self.proxy is None:
                self.proxy = self.cluster.client(self.client_id)
            getattr(self, phase)()
        except ThreadFailed as exc:
            self._fail(str(exc))
        except Exception as exc:  # a bug or an unexpected reply: still a test error
            self._fail("unexpected %s" % rpc.describe_error(exc))

    def _fail(self, reason):
        self.failed = True
        self.shared.say("[Error] thread %d (client %d): %s" % (self.index, self.client_id, reason))

    def load(self):
        for key in self.keys:
            self._put(key, self.expected[key])

    def run(self):
        step = self._step_function()
        count = self.spec.per_thread
        for i in range(count):
            if self.shared.stopped.is_set():
                return
            if self.index == 0 and i == count // 2:
                Disruptor(self.shared)()
            step(i)

    def _step_function(self):
        if self.spec.consistency == 0:
            return self._step_pattern
        if self.spec.dup_range == 0:
            return self._step_exact
        return self._step_monotonic

    # -- run-phase requests ------------------------------------------------

    def _step_pattern(self, i):
        key = self.keys[i % len(self.keys)]
        if self.pattern[i % PATTERN_SLOTS]:
            value = self.spec.keys + self.rng.randrange(self.spec.keys)
            self._put(key, value)
            self.expected[key] = value
        else:
            self._expect(key, self._get(key), self.expected[key], exact=True)

    def _step_exact(self, _i):
        key = self.rng.choice(self.keys)
        value = self.rng.randrange(2 * self.spec.keys)
        self._put(key, value)
        self._expect(key, self._get(key), value, exact=True)

    def _step_monotonic(self, _i):
        key = self.rng.randrange(self.spec.dup_range)
        with self.shared.key_locks[key]:
            value = self.shared.next_value(key)
            self._put(key, value)
        self._expect(key, self._get(key), value, exact=False)

    # -- calls -------------------------------------------------------------

    def _call(self, method, *args):
        try:
            return getattr(self.proxy, method)(*args)
        except rpc.CALL_ERRORS as exc:
            raise ThreadFailed("%s%r failed: %s" % (method, args, rpc.describe_error(exc))) from exc

    def _put(self, key, value):
        self._call("put", key, value)

    def _get(self, key):
        reply = self._call("get", key)
        try:
            got_key, value = rpc.parse_pair(reply)
        except ValueError as exc:
            raise ThreadFailed("get(%d): %s" % (key, exc)) from exc
        if got_key != key:
            raise ThreadFailed("get(%d) returned %r: wrong key" % (key, reply))
        return value

    @staticmethod
    def _expect(key, got, wanted, exact):
        if exact and got != wanted:
            raise ThreadFailed("get(%d) returned %d, expected %d" % (key, got, wanted))
        if not exact and got < wanted:
            raise ThreadFailed("get(%d) returned %d, expected at least %d (the value just put)"
                               % (key, got, wanted))


def make_workers(shared, rng):
    """One Worker per thread, each with its slice of the shuffled keys."""
    spec = shared.spec
    keys = list(range(spec.keys))
    rng.shuffle(keys)
    values = list(range(spec.keys))
    rng.shuffle(values)
    loaded = dict(enumerate(values))
    per = spec.keys // spec.threads
    client_ids = shared.cluster.client_ids()
    return [Worker(index, client_ids[index], keys[index * per:(index + 1) * per], loaded,
                   shared, rng.random())
            for index in range(spec.threads)]


def run_phase(workers, phase, shared):
    """Runs ``phase`` on every worker in its own thread; returns the seconds taken."""
    threads = [threading.Thread(target=w.guarded, args=(phase,), daemon=True,
                                name="testKVS-%s-%d" % (phase, w.index)) for w in workers]
    start = time.perf_counter()
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)  # wake up now and then, so signal handlers run
    except BaseException:
        shared.stopped.set()  # Ctrl-C: let the threads die quietly
        raise
    return max(time.perf_counter() - start, 1e-9)


def run_test_kvs(cluster, spec, out=print, seed=None):
    """Runs the whole workload, printing the two throughput lines."""
    cluster.ensure_clients(spec.threads)
    shared = Shared(spec, cluster, out)
    workers = make_workers(shared, random.Random(seed))
    loaded = sum(len(w.keys) for w in workers)
    elapsed = run_phase(workers, "load", shared)
    shared.say("Load throughput = %.1fops/sec" % (loaded / elapsed))
    elapsed = run_phase(workers, "run", shared)
    shared.say("Run throughput = %.1fops/sec" % (spec.per_thread * spec.threads / elapsed))
