"""`verify --timeout` (issue 9, item 3): through a 127.0.0.1 proxy that answers everything but one read —
which it trickles one byte at a time, or never answers — verify gives up at the deadline with one line
naming that read, instead of running for minutes or blaming the connection."""

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field

import pytest

from components import naming
from tests.live.conftest import Outcome, aws_env, deploy_aws, deploy_vault, run_cli, unique_namespace
from tests.live.servers import HOST, BaoServer, Server, free_port

TIMEOUT = 3
SLACK = 2.5
"""Seconds past the deadline a run may take (thread start-up, the last trickled byte, CI noise)."""
CANARIES = {
    "ALPACA_API_KEY_ID": "CANARY-t-key-7a1",
    "ALPACA_API_SECRET_KEY": "CANARY-t-secret-7a2",
    "DATABASE_PASSWORD": "CANARY-t-db-7a3",
    "REDIS_PASSWORD": "CANARY-t-redis-7a4",
}


@dataclass
class StallingProxy:
    """Forwards 127.0.0.1:port to `upstream`; once a client sends a request containing `stall_on`, that
    connection's answers are trickled one byte every `trickle` seconds (or dropped when None)."""

    upstream: int
    stall_on: bytes
    trickle: float | None
    port: int = field(default_factory=free_port)
    stalled: threading.Event = field(default_factory=threading.Event)
    _sockets: list[socket.socket] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def serve(self) -> Iterator["StallingProxy"]:
        listener = socket.create_server((HOST, self.port))
        self._sockets.append(listener)
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        try:
            yield self
        finally:
            for s in self._sockets:
                with suppress(OSError):
                    s.close()

    def _accept(self, listener: socket.socket) -> None:
        with suppress(OSError):
            while True:
                client, _ = listener.accept()
                upstream = socket.create_connection((HOST, self.upstream))
                self._sockets += [client, upstream]
                slow = threading.Event()
                threading.Thread(target=self._requests, args=(client, upstream, slow), daemon=True).start()
                threading.Thread(target=self._answers, args=(upstream, client, slow), daemon=True).start()

    def _requests(self, client: socket.socket, upstream: socket.socket, slow: threading.Event) -> None:
        with suppress(OSError):
            while chunk := client.recv(65536):
                if self.stall_on in chunk:
                    slow.set()
                    self.stalled.set()
                upstream.sendall(chunk)

    def _answers(self, upstream: socket.socket, client: socket.socket, slow: threading.Event) -> None:
        with suppress(OSError):
            while chunk := upstream.recv(65536):
                if not slow.is_set():
                    client.sendall(chunk)
                elif self.trickle is not None:
                    for byte in chunk:
                        client.sendall(bytes([byte]))
                        time.sleep(self.trickle)


def verify_through(env: dict[str, str], *argv: str) -> tuple[Outcome, float]:
    start = time.monotonic()
    outcome = run_cli(env, "verify", *argv, "--timeout", str(TIMEOUT))
    for value in CANARIES.values():
        assert value not in outcome.output
    return outcome, time.monotonic() - start


@pytest.mark.parametrize("trickle", [0.5, None], ids=["trickles-one-byte-at-a-time", "never-answers"])
def test_a_read_that_does_not_answer_ends_the_run_at_the_deadline(bao: BaoServer, trickle: float | None) -> None:
    namespace = unique_namespace()
    deploy_vault(bao, "staging", namespace, values=CANARIES, envFile="", vaultAppRole=False)
    stuck = naming.vault_data_path("secret", namespace, "redis/password")
    proxy = StallingProxy(int(bao.url.rsplit(":", 1)[1]), f"GET /v1/{stuck} ".encode(), trickle)
    for running in proxy.serve():
        env = {**bao.env, "VAULT_ADDR": running.url}
        outcome, took = verify_through(env, "--backend", "vault", "--namespace", namespace, "--concurrency", "2")
        assert proxy.stalled.is_set()
        assert outcome.code == 2, outcome.output
        assert outcome.stdout == ""
        assert outcome.stderr.strip().splitlines() == [
            f"error: VaultConnectionError: Timeout: no answer from Vault at {running.url} within {TIMEOUT} s "
            f"(reading secret/{namespace}/redis/password)"
        ]
        assert TIMEOUT - 0.5 < took < TIMEOUT + SLACK
        # The same proxy, a path it does not stall: the run is fine (the proxy is not the problem).
        proxy.stall_on = b"GET /v1/nothing-stalls-this "
        fine, _ = verify_through(env, "--backend", "vault", "--namespace", namespace, "--json")
        assert fine.code == 0, fine.output
        assert json.loads(fine.stdout)["ok"] is True


def test_aws_call_that_never_answers_ends_the_run_at_the_deadline(fresh_moto: Server) -> None:
    deploy_aws(fresh_moto, values=CANARIES, envFile="")
    proxy = StallingProxy(int(fresh_moto.url.rsplit(":", 1)[1]), b"BatchGetSecretValue", None)
    for running in proxy.serve():
        env = {**aws_env(fresh_moto), "AWS_ENDPOINT_URL": running.url}
        outcome, took = verify_through(env, "--backend", "aws", "--namespace", "staging")
        assert outcome.code == 2, outcome.output
        assert outcome.stderr.strip().splitlines() == [
            f"error: AWSSecretsManagerError: Timeout: no answer from AWS at {running.url} within {TIMEOUT} s "
            "(BatchGetSecretValue)"
        ]
        assert took < TIMEOUT + SLACK
