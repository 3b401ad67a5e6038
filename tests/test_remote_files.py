"""Files at URLs, read by the one reader: real HTTP and S3 (moto) servers on localhost, the real
fsspec clients (aiohttp, s3fs), retries with backoff, clear errors that never show credentials.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from caffe_layers import config
from caffe_layers.errors import ConfigError, DataError
from caffe_layers.files import is_url, read_bytes, remote, require_local, shown, take_retries
from caffe_layers.files.random_access import RemoteFile
from caffe_layers.files.read_ahead import ReadAhead
from caffe_layers.files.redact import redact_text, redact_url
from caffe_layers.files.remote import event_loop
from caffe_layers.files.retry import RetryPolicy, transient
from caffe_layers.params import ImageListParams
from caffe_layers.pipeline.reads import SampleFiles

# The servers run in threads of the test process, which forks the layers' workers.
pytestmark = pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")


def bucket_for(tmp_path) -> str:
    """A bucket name of this test's own (S3's rules: 3-63 lowercase letters, digits, '-')."""
    return re.sub(r"[^a-z0-9-]", "-", tmp_path.name.lower())[-40:].strip("-") + "-b"


def served(store, name: str, data: bytes) -> str:
    path = store.root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return f"{store.url}/{name}"


def in_s3(store, tmp_path, name: str, data: bytes) -> str:
    bucket = bucket_for(tmp_path)
    client = store.client()
    if bucket not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
        client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key=name, Body=data)
    return f"s3://{bucket}/{name}"


# --- URLs, names in messages ---------------------------------------------------------------------


def test_urls_and_local_paths_are_told_apart():
    assert all(map(is_url, ["s3://b/k", "gs://b/k", "az://c/k", "https://h/p",
                            "simplecache::s3://b/k"]))
    assert not any(map(is_url, ["/data/x.jpg", "images/x.jpg", "C:\\data\\x.jpg", "a:b.jpg"]))


def test_a_url_is_named_without_its_credentials():
    assert redact_url("https://user:pa55@host/a.jpg") == "https://***@host/a.jpg"
    assert redact_url("https://host/a.jpg?X-Amz-Signature=abc123&X-Amz-Date=1") == \
        "https://host/a.jpg?X-Amz-Signature=***&X-Amz-Date=***"
    assert redact_url("/data/a?b=c.jpg") == "/data/a?b=c.jpg"  # a local path is as written
    assert shown("s3://bucket/a.jpg") == "s3://bucket/a.jpg"


def test_a_clients_message_is_shown_without_any_storage_option():
    options = {"key": "AKIAEXAMPLEKEY", "secret": "s3cr3t-value", "client_kwargs": {
        "endpoint_url": "http://minio.local:9000"}}
    text = ("signature of AKIAEXAMPLEKEY with s3cr3t-value failed at http://minio.local:9000 "
            "for https://joe:pw@host/x")
    assert redact_text(text, storage_options=options) == \
        "signature of *** with *** failed at *** for https://***@host/x"


def test_storage_options_are_never_shown_by_the_config():
    params = config.load(ImageListParams, "{source: a.txt, batch_size: 2, storage_options: "
                                          "{key: AKIAEXAMPLEKEY, secret: s3cr3t-value}}")
    assert params.storage_options == {"key": "AKIAEXAMPLEKEY", "secret": "s3cr3t-value"}
    assert "s3cr3t" not in repr(params)
    with pytest.raises(ConfigError) as info:
        config.load(ImageListParams, "{source: a.txt, batch_size: 2, storage_options: "
                                     "s3cr3t-value}")
    assert "storage_options: must be a mapping, e.g. {key: value} (got a str, not shown)" \
        in str(info.value)
    assert "s3cr3t" not in str(info.value)


def test_a_url_where_a_local_file_is_needed_is_refused_with_the_fix():
    require_local("/data/train_lmdb", "source", "LMDB maps its file into memory")
    with pytest.raises(ConfigError) as info:
        require_local("s3://bucket/train_lmdb", "source", "LMDB maps its file into memory")
    assert str(info.value).startswith(
        "source: 's3://bucket/train_lmdb' is a URL, but LMDB maps its file into memory, which "
        "needs a local file; copy it to local disk first")


# --- reading -------------------------------------------------------------------------------------


def test_http_reads_the_bytes(http_store):
    data = os.urandom(3000)
    assert read_bytes(served(http_store, "dir/a.bin", data), "image") == data


def test_s3_reads_the_bytes_with_storage_options(s3_store, tmp_path):
    data = os.urandom(3000)
    url = in_s3(s3_store, tmp_path, "dir/a.bin", data)
    assert read_bytes(url, "image", storage_options=s3_store.storage_options) == data


def test_s3_reads_the_bytes_with_the_clients_environment(s3_store, tmp_path, monkeypatch):
    """No storage_options: the endpoint, credentials and region come from the environment, as
    the AWS clients read them."""
    data = os.urandom(100)
    url = in_s3(s3_store, tmp_path, "env.bin", data)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_store.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "caffe-layers-env-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "caffe-layers-env-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert read_bytes(url, "image") == data


def test_a_missing_file_over_http_names_the_url_and_the_line(http_store):
    missing = f"{http_store.url}/nope.jpg"
    with pytest.raises(DataError) as info:
        read_bytes(missing, "image", prefix="train.txt:3: ")
    assert str(info.value) == f"train.txt:3: image '{missing}' does not exist"


def test_a_missing_s3_object_names_the_url_and_the_line(s3_store, tmp_path):
    url = in_s3(s3_store, tmp_path, "here.jpg", b"x").replace("here", "nope")
    with pytest.raises(DataError) as info:
        read_bytes(url, "image", prefix="train.txt:4: ", storage_options=s3_store.storage_options)
    assert str(info.value) == f"train.txt:4: image '{url}' does not exist (HTTP 404 NoSuchKey)"


def test_access_denied_is_permanent_and_says_to_check_the_credentials(http_store,
                                                                      fast_retries):
    url = served(http_store, "a.jpg", b"x").replace("://", "://joe:pa55word@")
    http_store.faults.fail("a.jpg", -1, 403)
    with pytest.raises(DataError) as info:
        read_bytes(url, "image", prefix="l.txt:1: ")
    message = str(info.value)
    assert message.startswith(f"l.txt:1: cannot read image 'http://***@127.0.0.1:"
                              f"{http_store.port}/a.jpg': access denied (HTTP 403 Forbidden); "
                              f"check the credentials")
    assert "pa55word" not in message and http_store.faults.requests["a.jpg"] == 1
    assert take_retries() == (0, "")


def test_access_denied_by_s3_is_permanent(s3_store, tmp_path, fast_retries):
    s3_url = in_s3(s3_store, tmp_path, "a.jpg", b"x")
    before = s3_store.faults.requests[s3_url[5:]]
    s3_store.faults.fail(s3_url[5:], -1, 403)
    with pytest.raises(DataError, match=r"access denied \(HTTP 403 AccessDenied"):
        read_bytes(s3_url, "image", storage_options=s3_store.storage_options)
    assert s3_store.faults.requests[s3_url[5:]] - before == 1
    assert take_retries() == (0, "")


@pytest.mark.parametrize("status", [429, 503, 500])
def test_a_throttled_http_read_succeeds_on_retry_and_is_counted(http_store, fast_retries,
                                                                status):
    url = served(http_store, "a.jpg", b"payload")
    http_store.faults.fail("a.jpg", 2, status)
    assert read_bytes(url, "image") == b"payload"
    count, latest = take_retries()
    assert count == 2 and http_store.faults.requests["a.jpg"] == 3
    assert latest.startswith(f"HTTP {status}") and url in latest


def test_a_slowdown_from_s3_succeeds_on_retry_and_is_counted(s3_store, tmp_path, fast_retries):
    url = in_s3(s3_store, tmp_path, "a.jpg", b"payload")
    before = s3_store.faults.requests[url[5:]]  # the upload
    s3_store.faults.fail(url[5:], 3, 503)
    assert read_bytes(url, "image", storage_options=s3_store.storage_options) == b"payload"
    count, latest = take_retries()
    assert count == 3
    assert s3_store.faults.requests[url[5:]] - before == 4  # botocore did not retry on its own
    assert latest.startswith("HTTP 503 SlowDown")


def test_a_failure_that_lasts_gives_up_after_the_policys_attempts(http_store, fast_retries):
    url = served(http_store, "a.jpg", b"payload")
    http_store.faults.fail("a.jpg", -1, 503)
    with pytest.raises(DataError) as info:
        read_bytes(url, "image", prefix="l.txt:2: ")
    assert re.fullmatch(rf"l\.txt:2: cannot read image '{re.escape(url)}' after 4 attempts over "
                        rf"[0-9.]+ s: HTTP 503 Service Unavailable \(transient failures are "
                        rf"retried with backoff; is the store throttling or down\?\)",
                        str(info.value))
    assert http_store.faults.requests["a.jpg"] == 4 and take_retries()[0] == 3


def test_the_policy_waits_twice_as_long_each_time_up_to_the_cap_with_jitter():
    policy = RetryPolicy()
    waits = [[policy.delay_s(attempt) for attempt in range(1, 8)] for _ in range(50)]
    longest = [2, 4, 8, 16, 30, 30, 30]
    assert all(hi / 2 <= w <= hi for row in waits for w, hi in zip(row, longest))
    assert len({round(row[0], 6) for row in waits}) > 1  # jittered
    assert policy.longest_total_s() == sum(longest)


def test_which_failures_are_transient():
    import aiohttp

    assert transient(ConnectionResetError()) and transient(TimeoutError())
    assert transient(OSError(errno.ECONNRESET, "reset")) and transient(BrokenPipeError())
    assert not transient(FileNotFoundError("x")) and not transient(PermissionError("x"))
    assert not transient(ValueError("not a number"))
    for status, expected in ((429, True), (500, True), (502, True), (503, True), (504, True),
                             (408, True), (501, False), (400, False), (403, False), (404, False)):
        error = aiohttp.ClientResponseError(None, (), status=status, message="x")
        assert transient(error) is expected, status


def test_s3_failures_are_told_apart_by_their_botocore_cause():
    botocore = pytest.importorskip("botocore.exceptions")
    throttled = botocore.ClientError({"Error": {"Code": "SlowDown"}, "ResponseMetadata": {
        "HTTPStatusCode": 503}}, "GetObject")
    wrapped = OSError(errno.EBUSY, "Please reduce your request rate.")
    wrapped.__cause__ = throttled  # as s3fs raises it
    assert transient(throttled) and transient(wrapped)
    missing = FileNotFoundError("k")
    missing.__cause__ = botocore.ClientError({"Error": {"Code": "NoSuchKey"}, "ResponseMetadata":
                                              {"HTTPStatusCode": 404}}, "GetObject")
    assert not transient(missing)


# --- libraries, protocols, options ---------------------------------------------------------------


def test_a_protocol_whose_library_is_missing_names_the_pip_command():
    pytest.importorskip("fsspec")
    if subprocess.run([sys.executable, "-c", "import gcsfs"], capture_output=True).returncode == 0:
        pytest.skip("gcsfs is installed here")
    with pytest.raises(ConfigError) as info:
        read_bytes("gs://bucket/train.txt", "the image list", prefix="source: ")
    assert str(info.value).startswith("source: the image list 'gs://bucket/train.txt' is a gs:// "
                                      "URL, which needs gcsfs")
    assert str(info.value).endswith("pip install 'caffe-layers[gcs]'")


def test_without_fsspec_a_url_names_the_pip_command(tmp_path):
    code = ("import sys; sys.modules['fsspec'] = None\n"
            "from caffe_layers.files import read_bytes\n"
            "try:\n    read_bytes('s3://bucket/a.jpg', 'image')\n"
            "except Exception as exc:\n    print(type(exc).__name__, exc)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.strip() == ("ConfigError image 's3://bucket/a.jpg' is a URL; reading URLs "
                                   "needs fsspec: pip install 'caffe-layers[s3]'")


def test_an_unknown_protocol_is_a_config_error():
    pytest.importorskip("fsspec")
    with pytest.raises(ConfigError, match=r"'nosuchproto://' is not a protocol fsspec knows"):
        read_bytes("nosuchproto://x/y", "image")


def test_reading_local_files_never_imports_fsspec(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"a.png 1\n")
    code = ("import sys\nfrom caffe_layers.files import read_bytes\n"
            "from caffe_layers.sources.image_list import SampleList\n"
            f"read_bytes({str(tmp_path / 'a.txt')!r}, 'x'); SampleList.read("
            f"{str(tmp_path / 'a.txt')!r})\n"
            "print(sorted(m for m in ('fsspec', 'aiohttp', 's3fs') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.strip() == "[]", done.stderr


# --- random access (HDF5) ------------------------------------------------------------------------


def test_a_remote_file_reads_any_range_like_the_local_file(http_store):
    data = os.urandom(5 * 1000 + 17)
    url = served(http_store, "blob.bin", data)
    remote = RemoteFile(url, "HDF5 file", block_bytes=1000, cached_blocks=3)
    rng = np.random.default_rng(0)
    for _ in range(50):
        start = int(rng.integers(0, len(data) + 10))
        count = int(rng.integers(0, 2500))
        remote.seek(start)
        assert remote.read(count) == data[start:start + count]
    remote.seek(-7, os.SEEK_END)
    assert remote.read() == data[-7:] and remote.tell() == len(data)


def test_a_remote_file_reads_neighbouring_blocks_in_one_request_and_keeps_them(http_store):
    data = os.urandom(8000)
    url = served(http_store, "blob.bin", data)
    remote = RemoteFile(url, "HDF5 file", block_bytes=1000, cached_blocks=8)
    before = http_store.faults.requests["blob.bin"]  # the size
    remote.seek(500)
    assert remote.read(3000) == data[500:3500]
    remote.seek(1200)
    assert remote.read(100) == data[1200:1300]
    assert http_store.faults.requests["blob.bin"] - before == 1


def test_a_remote_file_reads_spans_ahead_together_and_reads_them_without_asking_again(
        http_store, monkeypatch):
    from caffe_layers.files import random_access

    monkeypatch.setattr(random_access, "RUN_BLOCKS", 2)
    data = os.urandom(10_000)
    url = served(http_store, "blob.bin", data)
    remote = RemoteFile(url, "HDF5 file", block_bytes=1000, cached_blocks=2)
    http_store.faults.latency_s = 0.05
    before = http_store.faults.requests["blob.bin"]  # the size
    remote.prefetch([(1500, 5200), (8000, 8500)])  # blocks 1-5 and 8: runs 1-2, 3-4, 5, 8
    remote.seek(1500)
    assert remote.read(3700) == data[1500:5200]
    remote.seek(8000)
    assert remote.read(500) == data[8000:8500]
    assert http_store.faults.requests["blob.bin"] - before == 4
    assert http_store.faults.most_in_flight == 4
    remote.prefetch([(6000, 6100)])
    remote.prefetch([(0, 10)])  # block 6 was not read: forgotten when no longer asked for
    assert sorted(remote._ahead) == [0]


def test_a_read_ahead_that_fails_raises_when_its_bytes_are_read(http_store, fast_retries):
    url = served(http_store, "blob.bin", os.urandom(5000))
    remote = RemoteFile(url, "HDF5 file", prefix="l.txt:1: ", block_bytes=1000)
    http_store.faults.fail("blob.bin", -1, status=403)
    remote.prefetch([(2000, 3000)])
    remote.seek(2000)
    with pytest.raises(DataError, match="^l.txt:1: cannot read HDF5 file .* access denied"):
        remote.read(10)


# --- reading ahead -------------------------------------------------------------------------------


class SlowReads:
    """A read coroutine of a given latency that records how many reads ran at once."""

    def __init__(self, latency_s: float, size: int = 100, fail: str = "") -> None:
        self.latency_s, self.size, self.fail = latency_s, size, fail
        self.lock = threading.Lock()
        self.running = self.most = 0
        self.started: list = []

    async def __call__(self, key: str) -> bytes:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.started.append(key)
        await asyncio.sleep(self.latency_s)
        with self.lock:
            self.running -= 1
        if key == self.fail:
            raise DataError(f"cannot read {key}")
        return key.encode().ljust(self.size, b".")


def test_read_ahead_keeps_several_reads_in_flight_and_returns_each_files_bytes():
    reads = SlowReads(0.02)
    with ReadAhead(reads, event_loop(), max_requests=8) as ahead:
        keys = [f"f{i}" for i in range(40)]
        tickets = ahead.request(keys)
        got = [ahead.take(ticket) for ticket in tickets]
    assert got == [key.encode().ljust(100, b".") for key in keys]
    assert reads.most == 8 and reads.started[:8] == keys[:8]


def test_read_ahead_holds_at_most_its_byte_cap_plus_the_reads_in_flight():
    reads = SlowReads(0.001, size=1000)
    with ReadAhead(reads, event_loop(), max_requests=4, max_bytes=5000) as ahead:
        tickets = ahead.request([f"f{i}" for i in range(100)])
        time.sleep(0.3)  # nothing taken: it stops reading at the cap
        assert len(reads.started) <= 5 + 4 and ahead.held_bytes <= 5000 + 4 * 1000
        assert [len(ahead.take(ticket)) for ticket in tickets] == [1000] * 100


def test_read_ahead_raises_a_reads_own_error_when_taken_and_drops_what_is_not_taken():
    reads = SlowReads(0.001, fail="f1")
    with ReadAhead(reads, event_loop(), max_requests=2) as ahead:
        tickets = ahead.request(["f0", "f1", "f2"])
        assert ahead.take(tickets[0]).startswith(b"f0")
        with pytest.raises(DataError, match="cannot read f1"):
            ahead.take(tickets[1])
        ahead.take(tickets[2])
        spare = ahead.request(["f3"])
        time.sleep(0.05)
        ahead.drop(spare)
        assert ahead.held_bytes == 0


def test_a_read_ahead_from_a_blocking_filesystem_runs_in_the_loops_threads(fast_retries):
    """fsspec's memory:// has no coroutines: read_async runs its blocking read off the loop."""
    import fsspec

    memory = fsspec.filesystem("memory")
    memory.pipe_file("/caffe_layers_test/a.bin", b"abc" * 1000)

    async def read(key: str) -> bytes:
        return await remote.read_async(f"memory://caffe_layers_test/{key}", "sample",
                                       error=DataError, prefix="l.txt:1: ")

    try:
        with ReadAhead(read, event_loop(), max_requests=4) as ahead:
            found, missing = ahead.request(["a.bin", "b.bin"])
            assert ahead.take(found) == b"abc" * 1000
            with pytest.raises(DataError, match="^l.txt:1: sample 'memory://caffe_layers_test/"
                                                "b.bin' does not exist"):
                ahead.take(missing)
    finally:
        memory.rm("/caffe_layers_test", recursive=True)


def test_the_storage_client_is_made_outside_the_loop_its_constructor_may_wait_on():
    """A client whose constructor calls fsspec's sync() fails inside the loop: SampleFiles makes
    it in the thread that requests the reads. (Its protocol, registered as a class at run time,
    is one fsspec knows.)"""
    import fsspec
    from fsspec.asyn import get_loop, sync
    from fsspec.implementations.memory import MemoryFileSystem

    class WaitsInItsConstructor(MemoryFileSystem):
        protocol = "caffelayerswaits"

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            sync(get_loop(), asyncio.sleep, 0)

    fsspec.register_implementation(WaitsInItsConstructor.protocol, WaitsInItsConstructor,
                                   clobber=True)
    url = "caffelayerswaits://caffe_layers_waits/0.bin"
    waits = fsspec.filesystem(WaitsInItsConstructor.protocol)  # this thread's own instance
    waits.pipe_file(url, b"zero")
    files = SampleFiles(lambda i: (url, "sample", "l.txt:1: "), remote=True)
    try:
        with files.batch(SimpleNamespace(number=0, indices=[0])) as fetched:
            assert fetched(0) == b"zero"
    finally:
        files.close()
        waits.rm(url)


def test_the_http_store_answers_a_request_it_cannot_serve_with_a_500_and_keeps_the_connection(
        http_store):
    import socket

    served(http_store, "a.bin", b"0123456789")
    with socket.create_connection(("127.0.0.1", http_store.port), timeout=10) as client:
        client.sendall(b"GET /a.bin HTTP/1.1\r\nRange: bytes=x-y\r\n\r\n")
        assert client.recv(4096).startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
        client.sendall(b"GET /a.bin HTTP/1.1\r\nRange: bytes=2-4\r\n\r\n")
        answer = client.recv(4096)
    assert answer.startswith(b"HTTP/1.1 206 Partial Content\r\n")
    assert answer.endswith(b"\r\n\r\n234")
    assert http_store.faults.in_flight == 0
