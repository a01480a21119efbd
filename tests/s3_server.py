"""A real S3-protocol server on loopback for the tests: moto in server mode, a process of its own.

No MinIO or Ceph server can be installed from these machines' registries
(neither is in Debian bookworm, nor on PyPI), so the server is moto's
standalone S3 server (``moto[server]``, a test dependency): it speaks the S3
HTTP protocol (signed requests, ranged GETs, S3's error codes) to the real
clients, s3fs and botocore. It is started on a free loopback port and stopped
by its PID. Authentication is on once the bucket is filled: every request
after that must be signed with the access key of the IAM user it made.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from xrootd_servers import free_port, stop_pid

#: a GET of an object of the bucket in moto's request log (werkzeug's access lines)
_OBJECT_GET = r'"GET /{bucket}/[^ ]+ HTTP'


@dataclass(frozen=True)
class S3Server:
    """A running moto server on loopback: its port, the credentials of its one user, and its request log."""

    port: int
    access_key: str
    secret_key: str
    log: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self, **overrides: str) -> dict[str, str]:
        """The AWS variables that point a client at this server as its user (the user's own AWS files ignored)."""
        empty = str(self.log.parent / "no-aws-file")
        return {
            "AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": empty, "AWS_SHARED_CREDENTIALS_FILE": empty,
            **overrides,
        }  # fmt: skip

    def object_gets(self, bucket: str) -> int:
        """GET requests of the bucket's objects the server has answered so far."""
        return len(re.findall(_OBJECT_GET.format(bucket=re.escape(bucket)), self.log.read_text()))


@contextmanager
def s3_server(directory: Path, buckets: dict[str, Path]) -> Iterator[S3Server]:
    """moto's S3 server holding ``buckets`` (name -> a directory whose files become its objects), authentication on."""
    import boto3

    port = free_port()
    log = directory / f"moto-{port}.log"
    spool = directory / f"moto-{port}-spool"  # moto spools large objects to temporary files: keep them out of /tmp
    spool.mkdir()
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with open(log, "w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env={**_clean_environment(), "TMPDIR": str(spool)})
    try:
        endpoint = f"http://127.0.0.1:{port}"
        _wait_until_up(endpoint, process)
        setup = {"endpoint_url": endpoint, "region_name": "us-east-1", "aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
        iam = boto3.client("iam", **setup)
        iam.create_user(UserName="agcframe")
        key = iam.create_access_key(UserName="agcframe")["AccessKey"]
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        iam.put_user_policy(UserName="agcframe", PolicyName="read-write", PolicyDocument=json.dumps(policy))
        s3 = boto3.client("s3", **setup)
        for bucket, source in buckets.items():
            s3.create_bucket(Bucket=bucket)
            for path in sorted(source.rglob("*")):
                if path.is_file():
                    s3.upload_file(str(path), bucket, path.relative_to(source).as_posix())
        _post(f"{endpoint}/moto-api/reset-auth", b"0")  # from here on, every request is checked against the user's key
        yield S3Server(port, key["AccessKeyId"], key["SecretAccessKey"], log)
    finally:
        stop_pid(process.pid)
        process.wait(timeout=30)


def _clean_environment() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}


def _wait_until_up(endpoint: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"moto's S3 server did not start at {endpoint} (exit code {process.poll()})")
            time.sleep(0.1)


def _post(url: str, body: bytes) -> None:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(request, timeout=10).close()
