"""Session fixtures: one OpenBao dev server and one moto server on free 127.0.0.1 ports, always stopped.

Isolation: Vault tests use their own namespaces (or mounts); AWS tests start from `POST /moto-api/reset`.
These tests are never skipped: `bao` and moto come with requirements.txt, and a missing one fails with
a message saying so.

Deploys go through the lifecycle engine (`components.engine`): `deploy_vault` / `deploy_aws` are one
`pulumi up` of a new stack; lifecycle tests keep an `Engine` across runs.
"""

import io
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
import pytest

from components import naming
from components.cli import main as cli_main
from components.engine import Engine, StackState
from components.engine.program import ProgramRun
from components.manifest import Manifest, load
from tests.conftest import EXAMPLE_ENV, REPO
from tests.live.servers import MOTO_ENV, BaoServer, Server, clean_env, reset_moto, start_bao, start_moto


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.live)


@pytest.fixture(scope="session")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaoServer]:
    server = start_bao(tmp_path_factory.mktemp("bao"))
    try:
        # As an operator does once (Pulumi.staging.yaml's comment): the stacks' AppRole roles live here.
        hvac.Client(url=server.url, token=server.token).sys.enable_auth_method("approle")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_moto(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def root_client(bao: BaoServer) -> hvac.Client:
    return hvac.Client(url=bao.url, token=bao.token)


@pytest.fixture
def fresh_moto(moto: Server) -> Server:
    reset_moto(moto.url)
    return moto


def unique_namespace() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cli(env: dict[str, str], *argv: str) -> Outcome:
    """`python -m components ...` in-process with exactly `env` for Vault/AWS settings."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    out, err = io.StringIO(), io.StringIO()
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = cli_main(list(argv))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return Outcome(code, out.getvalue(), err.getvalue())


def aws_env(moto: Server) -> dict[str, str]:
    """What `verify` needs to reach moto: dummy credentials, a region and AWS_ENDPOINT_URL."""
    return clean_env({**MOTO_ENV, "AWS_ENDPOINT_URL": moto.url})


def vault_config(bao: BaoServer, namespace: str | None = None, **extra: Any) -> dict[str, object]:
    """Stack config pointing the program at the live server, values from the example .env."""
    config: dict[str, object] = {
        "vault:address": bao.url,
        "vault:token": bao.token,
        "envFile": str(EXAMPLE_ENV),
    }
    if namespace:
        config.update({"namespace": namespace, "allowNamespaceOverride": True})
    config.update(extra)
    return config


def deploy_vault(bao: BaoServer, stack: str = "staging", namespace: str | None = None, **extra: Any) -> ProgramRun:
    """`pulumi up` of the real program against the live server. The engine gets no address of its own:
    the writes reach the server only through the stack's `vault:address` / `vault:token` config."""
    config = vault_config(bao, namespace, **extra)
    return Engine().up(stack, config, secret_keys=["vault:token", "values"]).run


def deploy_aws(moto: Server, namespace: str | None = None, **extra: Any) -> ProgramRun:
    """`pulumi up` of the real program with `backend: aws`; the engine sends every AWS call to moto."""
    config: dict[str, object] = {
        "backend": "aws",
        "aws:region": "us-east-1",
        "envFile": str(EXAMPLE_ENV),
        "awsRecoveryWindowInDays": 7,
    }
    if namespace:
        config.update({"namespace": namespace, "allowNamespaceOverride": True})
    config.update(extra)
    return Engine(aws_endpoint=moto.url).up("staging", config, secret_keys=["values"]).run


def legacy(state: StackState, manifest: Manifest | None = None) -> StackState:
    """The same stack as the program before path-keyed names left it: `secrets-<KEY>` (and
    `secrets-<KEY>-version`) instead of `secrets/<path>`, every reference renamed with it."""
    data = json.dumps(state.to_json())
    for key, secret in (manifest or load(REPO / "secrets.manifest.yaml")).secrets.items():
        name = naming.secret_logical_name(secret.path)
        version = f"{naming.AWS_SECRET_VERSION}::"
        data = data.replace(f'{version}{name}"', f'{version}{naming.legacy_version_logical_name(key)}"')
        data = data.replace(f'::{name}"', f'::{naming.legacy_secret_logical_name(key)}"')
    return StackState.from_json(json.loads(data))
