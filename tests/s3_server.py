"""A real S3 API on loopback for the publish tests: moto's server in a thread.

Import the fixtures into a test module (``from s3_server import s3, aws_env``).
``s3`` is session-wide (one server, started in ~0.3 s); ``aws_env`` gives each
test fake credentials and no profile/instance metadata lookups.
``S3Server.enforce_auth()`` turns IAM checks on for the duration of a block
(moto skips them by default) so access-denied paths can be tested with real
IAM users and policies. ``StoppableS3`` is a second moto server that a test can
stop (listening socket closed, every open connection cut, like a crashed or
rebooting server) and start again on the same port with the same buckets.
"""
from __future__ import annotations

import json
import logging
import socket
import threading
import urllib.request
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import boto3
import pytest

FAKE_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass
class S3Server:
    endpoint_url: str

    def client(self, **keys: Any) -> Any:
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1", **(keys or _fake_keys()))

    def new_bucket(self) -> str:
        name = f"mm-test-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def iam_user(self, actions: list[str]) -> dict[str, str]:
        """An IAM user allowed only ``actions`` on every resource; returns boto3 client keyword args."""
        iam = boto3.client("iam", endpoint_url=self.endpoint_url, region_name="us-east-1", **_fake_keys())
        user = f"user-{uuid.uuid4().hex[:8]}"
        iam.create_user(UserName=user)
        if actions:
            policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
            iam.put_user_policy(UserName=user, PolicyName="only", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        return {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}

    def _reset_auth(self, value: str) -> None:
        request = urllib.request.Request(
            f"{self.endpoint_url}/moto-api/reset-auth", data=value.encode(), method="POST", headers={"Content-Type": "application/json"}
        )
        urllib.request.urlopen(request, timeout=10).read()

    @contextmanager
    def enforce_auth(self) -> Iterator[None]:
        """IAM policies are checked inside the block (the fake 'testing' keys are then rejected)."""
        self._reset_auth("0")
        try:
            yield
        finally:
            self._reset_auth("inf")


class StoppableS3:
    """moto's S3 API on 127.0.0.1:<port> that can really go away and come back.

    moto's ThreadedMotoServer.stop() leaves the listening socket open and keeps serving
    kept-alive connections, so a client would never notice. Here ``stop()`` closes the
    listening socket (new connections are refused) and shuts every open connection (requests
    in flight fail); ``start()`` listens on the same port again. The buckets live in moto's
    in-process backend, so they survive, as a real server's disks would.
    """

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._server: Optional[Any] = None
        self._thread: Optional[threading.Thread] = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> "StoppableS3":
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        owner = self

        class Handler(MotoRequestHandler):
            def setup(self) -> None:
                super().setup()
                with owner._lock:
                    owner._connections.add(self.connection)

            def finish(self) -> None:
                with owner._lock:
                    owner._connections.discard(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass

            def log_request(self, *args: Any, **kwargs: Any) -> None:
                pass

        self._server = make_server("127.0.0.1", self.port, DomainDispatcherApplication(create_backend_app), threaded=True,
                                   request_handler=Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            open_now, self._connections = list(self._connections), set()
        for conn in open_now:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=10)
        self._server = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def client(self) -> Any:
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1", **_fake_keys())

    def new_bucket(self) -> str:
        name = f"mm-fault-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


def _fake_keys() -> dict[str, str]:
    return {"aws_access_key_id": FAKE_KEYS["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": FAKE_KEYS["AWS_SECRET_ACCESS_KEY"]}


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request in test logs
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Fake credentials in the environment; no profile files, no EC2 metadata lookups."""
    empty = tmp_path_factory.mktemp("aws") / "none"
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name, value in FAKE_KEYS.items():
        monkeypatch.setenv(name, value)
    return dict(FAKE_KEYS)
