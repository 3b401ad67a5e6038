"""Object stores on localhost for tests and benchmarks: an HTTP file server and an S3 server.

:class:`HTTPStore` serves a directory over HTTP/1.1 (``GET`` with byte ranges, ``HEAD``) from
threads of this process; :class:`S3Store` is moto's S3 (``pip install 'moto[server]'``) served
the same way, reached by the real S3 clients (s3fs, boto3) through its ``endpoint_url``. Both
can add latency to every request (a remote store's tens of milliseconds), answer a request for
a given file with a throttling or other error status the next ``k`` times
(:meth:`~Faults.fail`), and count the requests each file got. Used by this package's tests and
``scripts/bench_remote.py``; ``python -m caffe_layers.testing.stores {http,s3} DIR`` serves
``DIR`` from its own process (first line printed: a JSON object with the URL) until stdin
closes.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Dict, Tuple

REGION = "us-east-1"
CREDENTIALS = {"key": "caffe-layers-test-key", "secret": "caffe-layers-test-secret"}
_XML_ERROR = ('<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
              '<Message>{message}</Message><RequestId>caffe-layers</RequestId></Error>')
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

    def on_request(self, path: str) -> int | None:
        """Count a request for ``path``, wait the latency; the status to fail it with, if any."""
        path = path.lstrip("/")
        with self._lock:
            self.requests[path] += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            failing = self._failing.get(path)
            status = None
            if failing is not None and failing[0] != 0:
                failing[0] -= 1
                status = failing[1]
        if self.latency_s:
            time.sleep(self.latency_s)
        with self._lock:
            self.in_flight -= 1
        return status


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


class HTTPStore(_Server):
    """``root``'s files at ``http://127.0.0.1:<port>/<relative path>``."""

    def __init__(self, root: os.PathLike, latency_s: float = 0.0) -> None:
        self.root = Path(root).resolve()
        self.faults = Faults(latency_s)
        handler = type("Handler", (_FileHandler,), {"root": self.root, "faults": self.faults})
        super().__init__(_ThreadingServer(("127.0.0.1", 0), handler))
        self.url = f"http://127.0.0.1:{self.port}"


class _FileHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real stores
    disable_nagle_algorithm = True  # else the body waits for the headers' delayed ACK (40 ms)
    root: Path
    faults: Faults

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        """Quiet: a request log line per image would drown the test output."""

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def _answer(self, with_body: bool) -> None:
        path = self.path.split("?", 1)[0].lstrip("/")
        status = self.faults.on_request(path)
        target = (self.root / path).resolve()
        if status is None and (self.root not in target.parents or not target.is_file()):
            status = 404
        if status is not None:
            self._send(status, b"", with_body)
            return
        data = target.read_bytes()
        first, last = self._range(len(data))
        ranged = bool(self.headers.get("Range")) and len(data) > 0
        self._send(206 if ranged else 200, data[first:last + 1], with_body,
                   total=len(data) if ranged else None, span=(first, last))

    def _range(self, size: int) -> Tuple[int, int]:
        wanted = self.headers.get("Range", "")
        if not wanted.startswith("bytes=") or size == 0:
            return 0, size - 1
        first, _, last = wanted[len("bytes="):].partition("-")
        return int(first or 0), min(size - 1, int(last) if last else size - 1)

    def _send(self, status: int, body: bytes, with_body: bool, total: int | None = None,
              span: Tuple[int, int] = (0, 0)) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if total is not None:
            self.send_header("Content-Range", f"bytes {span[0]}-{span[1]}/{total}")
        self.end_headers()
        if with_body:
            self.wfile.write(body)


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
        status = self.faults.on_request(path)
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
