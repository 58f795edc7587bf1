"""Helpers for the `components run` live tests (and bench/run_check.py): provisioning what the program
declares, issuing a secret_id the documented way, a recording HTTP proxy, and the probe COMMAND."""

import hashlib
import http.client
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import hvac

from components import naming
from components.layout import Layout
from components.policies import secret_tags, vault_policy_hcl
from components.settings import AppRoleOptions
from tests.conftest import EXAMPLE_ENV, REPO
from tests.live.servers import HOST, BaoServer, bao_binary

PROBE = (
    "import hashlib, os\n"
    "for name in sorted(os.environ):\n"
    "    print(name, hashlib.sha256(os.environ[name].encode()).hexdigest())\n"
)
"""The COMMAND the tests start: one line per variable it got, its name and the SHA-256 of its value."""


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def probe_output(stdout: str) -> dict[str, str]:
    """name -> SHA-256 from the probe's output."""
    return dict(line.split(" ", 1) for line in stdout.splitlines())


def deploy_for_run(bao: BaoServer, namespace: str) -> dict[str, str]:
    """The committed manifest deployed in `namespace` by the real program through the lifecycle engine
    (values from the example .env, AppRole on); service -> role_id, as the stack exports it (`appRoles`)."""
    from components.engine import Engine

    client = hvac.Client(url=bao.url, token=bao.token)
    if "approle/" not in client.sys.list_auth_methods()["data"]:
        client.sys.enable_auth_method("approle")  # once per server, as docs/run.md says: `vault auth enable approle`
    config = {"envFile": str(EXAMPLE_ENV), "namespace": namespace, "allowNamespaceOverride": True}
    outputs = Engine(vault_addr=bao.url, vault_token=bao.token).up("staging", config).outputs
    return {service: str(role["roleId"]) for service, role in outputs["appRoles"].items()}


def provision_vault(client: hvac.Client, plan: Layout, values: Mapping[str, str], approle: AppRoleOptions) -> None:
    """What the program declares for `plan` with AppRole on, written with hvac for bench/run_check.py (a
    benchmark of `run`, not of a deploy); the tests deploy with `deploy_for_run` instead."""
    if f"{approle.mount}/" not in client.sys.list_auth_methods()["data"]:
        client.sys.enable_auth_method("approle", path=approle.mount)
    for spot in plan.secrets:
        client.secrets.kv.v2.create_or_update_secret(
            path=spot.name, secret={"value": values[spot.key]}, mount_point=plan.mount
        )
    for policy in plan.policies:
        client.sys.create_or_update_acl_policy(name=policy.name, policy=vault_policy_hcl(plan, policy))
        if policy.approle:
            client.write(
                f"auth/{approle.mount}/role/{policy.approle}",
                token_policies=[policy.name],
                token_no_default_policy=True,
                bind_secret_id=True,
                token_ttl=approle.token_ttl,
                token_max_ttl=approle.token_max_ttl,
                secret_id_ttl=approle.secret_id_ttl,
                token_bound_cidrs=list(approle.token_bound_cidrs),
                secret_id_bound_cidrs=list(approle.secret_id_bound_cidrs),
            )


def provision_aws(secretsmanager: Any, plan: Layout, values: Mapping[str, str]) -> None:
    """The secrets the program declares for `plan` on AWS: name, description, the tags that grant each reader
    (`read-<service>`), the value. (moto evaluates neither resource ARNs nor conditions, so the IAM policies
    would change nothing here; the tests that need an identity create one.)"""
    for spot in plan.secrets:
        tags = secret_tags(plan.namespace, spot.key, spot.readers)
        secretsmanager.create_secret(
            Name=spot.name,
            Description=naming.secret_description(plan.namespace, spot.key),
            SecretString=values[spot.key],
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )


def role_id(client: hvac.Client, role: str, mount: str = "approle") -> str:
    """What the stack exports as `appRoles.<service>.roleId`."""
    return str(client.read(f"auth/{mount}/role/{role}/role-id")["data"]["role_id"])


def issue_secret_id(bao: BaoServer, role: str, directory: Path, mount: str = "approle") -> Path:
    """The operator's command from docs/run.md, its output written to a file only its owner can read."""
    done = subprocess.run(
        [bao_binary(), "write", "-f", "-field=secret_id", f"auth/{mount}/role/{role}/secret-id"],
        env=bao.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    path = directory / f"{role}.secret-id"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(done.stdout)
    return path


def run_components(env: Mapping[str, str], *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`python -m components ...` as its own process (it execs COMMAND), from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "components", *argv],
        cwd=REPO,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass
class Recorded:
    method: str
    path: str
    target: str
    """X-Amz-Target (AWS JSON APIs), else empty."""
    body: Any = None
    """The JSON body of an AWS call (names only); never kept for Vault (a login carries the secret_id)."""


@dataclass
class RecordingProxy:
    """An HTTP proxy on 127.0.0.1 that forwards every request and records it: as a forward proxy
    (HTTP_PROXY, absolute request URLs: Vault) or as a reverse proxy to `upstream` (AWS_ENDPOINT_URL)."""

    upstream: str
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""

    @contextmanager
    def running(self) -> Iterator["RecordingProxy"]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                absolute = urlsplit(self.path) if self.path.startswith("http") else None
                target = urlsplit(proxy.upstream) if absolute is None else absolute
                path = self.path if absolute is None else self.path[len(f"{absolute.scheme}://{absolute.netloc}") :]
                amz_target = self.headers.get("X-Amz-Target", "")
                recorded = json.loads(body) if amz_target and body else None
                proxy.requests.append(Recorded(self.command, path, amz_target, recorded))
                upstream = http.client.HTTPConnection(target.hostname or HOST, target.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "host")}
                headers["Host"] = target.netloc
                upstream.request(self.command, path, body=body or None, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                upstream.close()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = forward

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer((HOST, 0), Handler)
        self.url = f"http://{HOST}:{server.server_address[1]}"
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
