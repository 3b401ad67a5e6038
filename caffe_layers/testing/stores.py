"""Object stores on localhost for tests and benchmarks: an HTTP file server and an S3 server.

:class:`HTTPStore` serves a directory over HTTP/1.1 (``GET`` with byte ranges, ``HEAD``) from an
event loop in a thread of this process; :class:`S3Store` is moto's S3 (``pip install
'moto[server]'``) served from threads of this process, reached by the real S3 clients (s3fs,
boto3) through its ``endpoint_url``. Both can add latency to every request (a remote store's
tens of milliseconds), answer a request for a given file with a throttling or other error
status the next ``k`` times (:meth:`~Faults.fail`), and count the requests each file got. Used
by this package's tests and ``scripts/bench_remote.py``; ``python -m
caffe_layers.testing.stores {http,s3} DIR`` serves ``DIR`` from its own process (first line
printed: a JSON object with the URL) until stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import io
import json
import os
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Dict, Tuple
from urllib.parse import unquote

REGION = "us-east-1"
CREDENTIALS = {"key": "caffe-layers-test-key", "secret": "caffe-layers-test-secret"}
_XML_ERROR = ('<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
              '<Message>{message}</Message><RequestId>caffe-layers</RequestId></Error>')
SERVE_TIMEOUT_S = 30.0
MAX_HEADER_BYTES = 64 << 10
_S3_CODES = {403: "AccessDenied", 404: "NoSuchKey", 429: "SlowDown", 500: "InternalError",
             503: "SlowDown"}


class Faults:
    """Latency, failures on purpose and request counts, per file (its path on the server);
    ``most_in_flight``: the most requests it was answering at once."""

    def __init__(self, latency_s: float = 0.0) -> None:
        self.latency_s = latency_s
        self._lock = threading.Lock()
        self._failing: Dict[str, list] = {}
        self.requests: collections.Counter = collections.Counter()
        self.in_flight = self.most_in_flight = 0

    def fail(self, path: str, times: int, status: int = 503) -> None:
        """Answer the next ``times`` requests for ``path`` with ``status`` (``times`` -1:
        every one)."""
        with self._lock:
            self._failing[path.lstrip("/")] = [times, status]

    def begin(self, path: str) -> int | None:
        """Count a request for ``path`` (in flight until :meth:`end`); the status to fail it
        with, if any. The store waits ``latency_s`` between the two."""
        path = path.lstrip("/")
        with self._lock:
            self.requests[path] += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            failing = self._failing.get(path)
            if failing is None or failing[0] == 0:
                return None
            failing[0] -= 1
            return failing[1]

    def end(self) -> None:
        with self._lock:
            self.in_flight -= 1


class _Server:
    """A threaded server of this process on a free localhost port; ``close()`` stops it."""

    def __init__(self, server) -> None:
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, name="store", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(10.0)
        self._server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class _ThreadingServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # a client opening many connections at once: none dropped (a
    # dropped SYN is sent again after 1 s)


class HTTPStore:
    """``root``'s files at ``http://127.0.0.1:<port>/<relative path>``.

    Served by an asyncio protocol on an event loop in a thread of this process: a benchmark's
    server shares the cores with the layer it measures, and this one costs a third of the CPU
    per request of http.server's thread per connection (and less than aiohttp.web). It speaks
    what file clients send: ``GET`` and ``HEAD``, one ``Range: bytes=a-b``, keep-alive, one
    request at a time per connection.
    """

    def __init__(self, root: os.PathLike, latency_s: float = 0.0) -> None:
        self.root = Path(root).resolve()
        self.faults = Faults(latency_s)
        self.connections: set = set()  # the transports of open connections (in the loop)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="store",
                                        daemon=True)
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._loop.create_server(
            lambda: _HTTPConnection(self), "127.0.0.1", 0, backlog=1024),
            self._loop).result(SERVE_TIMEOUT_S)
        self.port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def answer(self, method: str, target: str, headers: Dict[str, str]) -> bytes:
        """The whole response to a request (a range: only its bytes are read)."""
        path = unquote(target.split("?", 1)[0]).lstrip("/")
        status = self.faults.begin(path)
        if status is None and method not in ("GET", "HEAD"):
            status = 405
        found = self._open(path) if status is None else None
        if found is None:
            return _response(status or 404, b"")
        with found:
            size = os.fstat(found.fileno()).st_size
            wanted = headers.get("range", "")
            if not wanted or not size:
                return _response(200, found.read() if method == "GET" else b"", length=size)
            first, last = _range(wanted, size)
            found.seek(first)
            body = found.read(last + 1 - first) if method == "GET" else b""
            return _response(206, body, {"Content-Range": f"bytes {first}-{last}/{size}"},
                             length=last + 1 - first)

    def _open(self, path: str):
        """The file at ``path`` under the root, open for reading; None if there is none."""
        location = os.path.normpath(os.path.join(self.root, path))
        if not location.startswith(f"{self.root}{os.sep}"):
            return None  # outside the root (..)
        try:
            return open(location, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def close(self) -> None:
        if self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(self._shut(), self._loop).result(
                    SERVE_TIMEOUT_S)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(SERVE_TIMEOUT_S)
        if not self._thread.is_alive():
            self._loop.close()

    async def _shut(self) -> None:
        self._server.close()
        for transport in list(self.connections):
            transport.abort()
        await self._server.wait_closed()
        while self.connections:  # each closes in a callback of the loop
            await asyncio.sleep(0)

    def __enter__(self) -> HTTPStore:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _response(status: int, body: bytes, headers: Dict[str, str] | None = None,
              length: int | None = None) -> bytes:
    """Status line, headers and ``body``; ``length``: the Content-Length if not the body's (a
    HEAD's)."""
    head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
            f"Content-Length: {len(body) if length is None else length}"]
    head += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return "\r\n".join(head + ["", ""]).encode("latin-1") + body


class _HTTPConnection(asyncio.Protocol):
    """One client connection of an :class:`HTTPStore`: its requests, answered in turn after the
    store's latency."""

    def __init__(self, store: HTTPStore) -> None:
        self.store = store
        self.buffer = b""
        self.busy = False  # a request is being answered: the next one waits in the buffer
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.store.connections.add(transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._next()

    def connection_lost(self, exc) -> None:
        self.store.connections.discard(self.transport)
        self.transport = None

    def _next(self) -> None:
        end = self.buffer.find(b"\r\n\r\n")
        if self.busy or end < 0:
            if len(self.buffer) > MAX_HEADER_BYTES:
                self.transport.close()
            return
        lines = self.buffer[:end].decode("latin-1").split("\r\n")
        headers = dict((name.strip().lower(), value.strip()) for name, _, value in
                       (line.partition(":") for line in lines[1:]))
        body_end = end + 4 + int(headers.get("content-length") or 0)
        if len(self.buffer) < body_end:
            return  # a request body still coming (this store ignores it)
        self.buffer = self.buffer[body_end:]
        method, target, version = (lines[0].split(" ") + ["", ""])[:3]
        close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
        self.busy = True
        try:
            response = self.store.answer(method, target, headers)
        except Exception as exc:  # a request this store cannot answer: say so, keep serving
            response = _response(500, f"{type(exc).__name__}: {exc}".encode())
        latency_s = self.store.faults.latency_s
        if latency_s:
            asyncio.get_running_loop().call_later(latency_s, self._send, response, close)
        else:
            self._send(response, close)

    def _send(self, response: bytes, close: bool) -> None:
        self.store.faults.end()
        self.busy = False
        if self.transport is None:
            return
        self.transport.write(response)
        if close:
            self.transport.close()
        else:
            self._next()


def _range(wanted: str, size: int) -> Tuple[int, int]:
    """The first and last byte a ``Range: bytes=a-b`` header asks of ``size`` (all without)."""
    if not wanted.startswith("bytes=") or size == 0:
        return 0, size - 1
    first, _, last = wanted[len("bytes="):].partition("-")
    return int(first or 0), min(size - 1, int(last) if last else size - 1)


class S3Store(_Server):
    """moto's S3 at ``endpoint_url`` (path-style addressing, any credentials, region
    ``us-east-1``), with :class:`Faults` keyed by ``bucket/key``.

    Served with keep-alive connections, as S3 serves them (werkzeug's own server closes every
    connection, which would make each request pay a new connection on both sides).
    """

    def __init__(self, latency_s: float = 0.0) -> None:
        from moto.server import create_backend_app

        self.faults = Faults(latency_s)
        handler = type("Handler", (_WSGIHandler,), {"app": create_backend_app("s3"),
                                                    "faults": self.faults})
        super().__init__(_ThreadingServer(("127.0.0.1", 0), handler))
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.storage_options = {"endpoint_url": self.endpoint_url, **CREDENTIALS,
                                "client_kwargs": {"region_name": REGION}}

    def client(self):
        """A boto3 S3 client of this store (to create buckets and put objects)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=REGION,
                            aws_access_key_id=CREDENTIALS["key"],
                            aws_secret_access_key=CREDENTIALS["secret"])

    def upload(self, root: os.PathLike, bucket: str, prefix: str = "") -> str:
        """Every file under ``root`` into ``bucket`` (created) under ``prefix``; the
        ``s3://bucket/prefix`` URL of ``root``."""
        client = self.client()
        client.create_bucket(Bucket=bucket)
        root = Path(root)
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            key = "/".join(filter(None, [prefix.strip("/"), path.relative_to(root).as_posix()]))
            client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
        return f"s3://{bucket}/{prefix.strip('/')}".rstrip("/")


class _WSGIHandler(BaseHTTPRequestHandler):
    """A WSGI application (moto's) behind :class:`Faults`, over keep-alive HTTP/1.1."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    app: Callable
    faults: Faults

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        """Quiet: a request log line per image would drown the test output."""

    def handle_one_request(self) -> None:
        self.raw_requestline = self.rfile.readline(65537)
        if not self.raw_requestline or not self.parse_request():
            self.close_connection = True
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path, _, query = self.path.partition("?")
        status = self.faults.begin(path)
        try:
            if self.faults.latency_s:
                time.sleep(self.faults.latency_s)
            self._forward(path, query, body, status)
        finally:
            self.faults.end()

    def _forward(self, path: str, query: str, body: bytes, status: int | None) -> None:
        if status is not None:
            code = _S3_CODES.get(status, "InternalError")
            error = _XML_ERROR.format(code=code, message=f"caffe_layers test store: {status}")
            self._reply(f"{status} {code}", [("Content-Type", "application/xml")],
                        [error.encode()])
            return
        answer: dict = {}
        chunks = self.app(self._environ(path, query, body),
                          lambda status_line, headers, exc_info=None:
                          answer.update(status=status_line, headers=headers))
        try:
            self._reply(answer["status"], answer["headers"], list(chunks))
        finally:
            getattr(chunks, "close", lambda: None)()

    def _environ(self, path: str, query: str, body: bytes) -> dict:
        from urllib.parse import unquote

        environ = {"REQUEST_METHOD": self.command, "PATH_INFO": unquote(path),
                   "QUERY_STRING": query, "SERVER_NAME": "127.0.0.1",
                   "SERVER_PORT": str(self.server.server_address[1]),
                   "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.version": (1, 0),
                   "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
                   "wsgi.errors": sys.stderr, "wsgi.multithread": True,
                   "wsgi.multiprocess": False, "wsgi.run_once": False,
                   "CONTENT_LENGTH": str(len(body)),
                   "CONTENT_TYPE": self.headers.get("Content-Type", "")}
        for name, value in self.headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key not in ("HTTP_CONTENT_LENGTH", "HTTP_CONTENT_TYPE"):
                environ[key] = value
        return environ

    def _reply(self, status_line: str, headers: list, chunks: list) -> None:
        body = b"" if self.command == "HEAD" else b"".join(chunks)
        lengths = [value for name, value in headers if name.lower() == "content-length"]
        code, _, reason = status_line.partition(" ")
        self.send_response(int(code), reason)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        # HEAD: the length of the object, as the application said
        self.send_header("Content-Length", lengths[0] if self.command == "HEAD" and lengths
                         else str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main(argv=None) -> None:
    """Serve a directory from this process until stdin closes (for benchmarks)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("http", "s3"))
    parser.add_argument("root", help="the directory to serve")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--bucket", default="data")
    args = parser.parse_args(argv)
    if args.kind == "http":
        store = HTTPStore(args.root, args.latency_ms / 1000)
        info = {"url": store.url}
    else:
        store = S3Store()
        info = {"url": store.upload(args.root, args.bucket),
                "storage_options": store.storage_options}
        store.faults.latency_s = args.latency_ms / 1000
    print(json.dumps(info), flush=True)
    with store:
        for _ in sys.stdin:  # until the parent closes stdin
            pass


if __name__ == "__main__":
    main()
