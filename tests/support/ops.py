"""Floe's operations port from a test: find the address a running Floe
serves on (from its JSON log), GET its endpoints, parse /metrics; and a TCP
gate that makes a server unreachable and reachable again.
"""

from __future__ import annotations

import json
import queue
import re
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from typing import IO

from support import floe

# One sample of the Prometheus text format: name, optional labels, value.
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Metrics = dict[tuple[str, frozenset[tuple[str, str]]], float]


class LogReader:
    """Collects a process's stderr lines on a thread (JSON lines parsed)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._closed = threading.Event()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[bytes]) -> None:
        try:
            for raw in stream:
                self.lines.put(raw.decode(errors="replace").rstrip("\n"))
        finally:
            self._closed.set()

    def until_closed(self, timeout: float = 30) -> list[str]:
        """Every line, once the process closed its stderr (it exited)."""
        if not self._closed.wait(timeout):
            raise AssertionError(f"stderr still open after {timeout} s")
        return self.drain()

    def drain(self) -> list[str]:
        """Every line read so far."""
        while True:
            try:
                self.seen.append(self.lines.get_nowait())
            except queue.Empty:
                return self.seen

    def wait_for(self, predicate, proc: subprocess.Popen, what: str) -> dict:
        """The first JSON log line for which `predicate(line)` holds."""
        def found() -> bool:
            return any(_matches(line, predicate) for line in self.drain()) or floe.exited(proc)

        floe.wait_for(found, floe.TIMEOUT, lambda: f"{what}; log so far:\n" + "\n".join(self.seen[-20:]))
        return next(json.loads(line) for line in self.seen if _matches(line, predicate))


def _matches(line: str, predicate) -> bool:
    try:
        return predicate(json.loads(line))
    except ValueError:
        return False


def serving_address(log: LogReader, proc: subprocess.Popen) -> str:
    """host:port of the operations port, from Floe's start-up log line."""
    line = log.wait_for(lambda l: "addr" in l.get("fields", {}), proc, "the operations port's log line")
    return line["fields"]["addr"]


def get(addr: str, path: str) -> tuple[int, str, str]:
    """GETs http://addr/path: status, content type, body."""
    try:
        with urllib.request.urlopen(f"http://{addr}{path}", timeout=10) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def scrape(addr: str) -> Metrics:
    """/metrics parsed: (name, labels) -> value. Fails on a malformed line."""
    status, content_type, body = get(addr, "/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4"), (status, content_type)
    out: Metrics = {}
    for line in body.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a Prometheus sample: {line!r}"
        name, labels, value = match.groups()
        pairs = frozenset((k, v.replace('\\"', '"').replace("\\\\", "\\")) for k, v in _LABEL.findall(labels or ""))
        key = (name, pairs)
        assert key not in out, f"sample given twice: {line!r}"
        out[key] = float(value)
    return out


def value(metrics: Metrics, name: str, **labels: str) -> float:
    """One sample's value; 0 when absent (a labelled counter not yet seen)."""
    return metrics.get((name, frozenset(labels.items())), 0.0)


def by_label(metrics: Metrics, name: str, label: str) -> dict[str, float]:
    """The samples of `name`, keyed by one label's value."""
    return {dict(labels)[label]: v for (n, labels), v in metrics.items() if n == name}


class Gate:
    """A TCP forwarder from 127.0.0.1:<port> to a target port. `close()`
    refuses new connections and cuts open ones (the server is unreachable);
    `open()` listens on the same port again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.open()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def open(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def close(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, []
        if listener is not None:
            listener.close()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except (socket.timeout, OSError):
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
