"""`components run --backend vault` on a live OpenBao, as each service logs in with its own AppRole.

The staging namespace is deployed by the real program through the lifecycle engine (secrets with the
example .env's values, the read policies, one AppRole role per service; `run_helpers.deploy_for_run`),
and each service logs in with the role_id the stack exports.
Each service's secret_id is issued the documented way (`bao write -f -field=secret_id ...`) into a 0600
file. Failures are provoked in a namespace of their own, so staging stays as deployed.

Proved here: each service's COMMAND gets exactly its secrets with the .env's values, the config keys and
nothing else (no login material); on the wire it logs in once and reads exactly its secrets; the token its
role issues reads nothing else, lists nothing and writes nothing; every failure is one line, exit 2, and
COMMAND never starts (it would create a marker file); no value ever reaches run's output.
"""

import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest

from components import naming
from components.envfile import read_env
from components.layout import layout
from components.manifest import load
from components.settings import AppRoleOptions
from tests.conftest import EXAMPLE_ENV, REPO
from tests.live.conftest import unique_namespace
from tests.live.run_helpers import (
    PROBE,
    RecordingProxy,
    deploy_for_run,
    issue_secret_id,
    probe_output,
    role_id,
    run_components,
    sha256,
)
from tests.live.servers import HOST, BaoServer, Server, free_port, start_bao

MANIFEST = load(REPO / "secrets.manifest.yaml")
ENTRIES = read_env(EXAMPLE_ENV)
VALUES = {key: entry.value for key, entry in ENTRIES.items()}
SECRET_VALUES = [VALUES[key] for key in MANIFEST.secrets]
APPROLE = AppRoleOptions()
STAGING = layout(MANIFEST, "vault", "staging")
SERVICES = list(MANIFEST.services)
LOGIN = ("VAULT_TOKEN", "VAULT_ROLE_ID", "VAULT_SECRET_ID", "VAULT_SECRET_ID_FILE")


def base_env(**extra: str) -> dict[str, str]:
    """A service host's environment: nothing of the person running the tests."""
    return {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", **extra}


def run(env: dict[str, str], service: str, namespace: str, *command: str, extra: tuple[str, ...] = ()) -> "Done":
    argv = ["run", "--service", service, "--backend", "vault", "--namespace", namespace, "--env-file", str(EXAMPLE_ENV)]
    done = run_components(env, *argv, *extra, "--", *command)
    for value in SECRET_VALUES:  # canaries: never in run's own output
        assert value not in done.stderr
        assert value not in done.stdout
    return Done(done.returncode, done.stdout, done.stderr)


class Done:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code, self.stdout, self.stderr = code, stdout, stderr

    @property
    def errors(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def staging(bao: BaoServer) -> dict[str, str]:
    """service -> role_id, from the deployed stack's `appRoles` export."""
    return deploy_for_run(bao, "staging")


@pytest.fixture(scope="module")
def secret_ids(bao: BaoServer, staging: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("secret-ids")
    return {s: issue_secret_id(bao, naming.approle_role("staging", s), directory) for s in SERVICES}


def approle_env(
    bao: BaoServer, staging: dict[str, str], service: str, secret_id_file: Path, **extra: str
) -> dict[str, str]:
    return base_env(
        VAULT_ADDR=bao.url,
        VAULT_ROLE_ID=staging[service],
        VAULT_SECRET_ID_FILE=str(secret_id_file),
        **extra,
    )


def expected_environment(service: str, env: dict[str, str]) -> dict[str, str]:
    """What COMMAND must see: the host's variables minus the login, its secrets, the config keys."""
    expected = {k: sha256(v) for k, v in env.items() if k not in LOGIN}
    expected.update({s.key: sha256(VALUES[s.key]) for s in STAGING.readable_by(service)})
    expected.update({k: sha256(VALUES[k]) for k in MANIFEST.config})
    return expected


def test_secret_id_file_is_private(secret_ids: dict[str, Path]) -> None:
    for path in secret_ids.values():
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.read_text().strip()


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_gets_exactly_its_secrets(
    bao: BaoServer, staging: dict[str, str], secret_ids: dict[str, Path], service: str
) -> None:
    env = approle_env(bao, staging, service, secret_ids[service])
    done = run(env, service, "staging", sys.executable, "-c", PROBE)
    assert done.code == 0, done.stderr
    assert probe_output(done.stdout) == expected_environment(service, env)
    assert done.stderr.splitlines() == [
        "Initialized VaultSecretManager (namespace=staging)",
        *(f"Loaded secret: {s.name}" for s in STAGING.readable_by(service)),
    ]


@pytest.mark.parametrize("service", SERVICES)
def test_on_the_wire_one_login_and_exactly_its_reads(
    bao: BaoServer, staging: dict[str, str], secret_ids: dict[str, Path], service: str
) -> None:
    """Through an HTTP proxy that records every request (also proves HTTP_PROXY is honoured)."""
    with RecordingProxy(bao.url).running() as proxy:
        env = approle_env(bao, staging, service, secret_ids[service], HTTP_PROXY=proxy.url)
        done = run(env, service, "staging", extra=("--check",))
    assert done.code == 0, done.stderr
    assert proxy.requests[0].method == "POST"
    assert proxy.requests[0].path == "/v1/auth/approle/login"
    reads = sorted((r.method, r.path) for r in proxy.requests[1:])
    assert reads == [("GET", f"/v1/{s.read_path}") for s in STAGING.readable_by(service)]
    # --check: one row per variable it sets or removes, names and sources only.
    rows = dict(line.split(None, 1) for line in done.stdout.splitlines()[:-1])
    assert rows == {
        **{s.key: f"secret from Vault {s.location}" for s in STAGING.readable_by(service)},
        **{k: f"config from {EXAMPLE_ENV}:{ENTRIES[k].line}" for k in MANIFEST.config},
        "VAULT_ROLE_ID": "removed: Vault login material (the service never holds it)",
        "VAULT_SECRET_ID_FILE": "removed: Vault login material (the service never holds it)",
    }
    secrets = len(STAGING.readable_by(service))
    assert done.stdout.splitlines()[-1] == (
        f"✓ {service} would start with {secrets} secrets (Vault) and {len(MANIFEST.config)} config keys"
    )


@pytest.mark.parametrize("service", SERVICES)
def test_the_role_token_reads_nothing_else_lists_nothing_writes_nothing(
    bao: BaoServer, root_client: hvac.Client, secret_ids: dict[str, Path], service: str
) -> None:
    role = naming.approle_role("staging", service)
    login = hvac.Client(url=bao.url).auth.approle.login(
        role_id=role_id(root_client, role), secret_id=secret_ids[service].read_text().strip()
    )
    assert login["auth"]["token_policies"] == [naming.vault_service_policy("staging", service)]  # no `default`
    assert login["auth"]["lease_duration"] == APPROLE.token_ttl
    token = hvac.Client(url=bao.url, token=login["auth"]["client_token"])
    own = STAGING.readable_by(service)
    for spot in own:
        assert token.read(spot.read_path)["data"]["data"]["value"] == VALUES[spot.key]
    others = [s.read_path for s in STAGING.secrets if s not in own]
    elsewhere = ["secret/data/staging/not/in-manifest", "secret/data/prod/database/password"]
    for path in [*others, *elsewhere]:
        with pytest.raises(hvac.exceptions.Forbidden):
            token.read(path)
    with pytest.raises(hvac.exceptions.Forbidden):
        token.list("secret/metadata/staging")
    with pytest.raises(hvac.exceptions.Forbidden):
        token.read(f"secret/metadata/{own[0].name}")
    with pytest.raises(hvac.exceptions.Forbidden):
        token.write_data(own[0].read_path, data={"data": {"value": "CANARY-overwrite"}})
    assert token.read(own[0].read_path)["data"]["data"]["value"] == VALUES[own[0].key]


def test_an_existing_vault_token_works_and_is_not_passed_on(
    bao: BaoServer, root_client: hvac.Client, staging: dict[str, str]
) -> None:
    policy = naming.vault_service_policy("staging", "orchestrator")
    token = root_client.auth.token.create(policies=[policy], no_default_policy=True, ttl="5m")["auth"]["client_token"]
    env = base_env(VAULT_ADDR=bao.url, VAULT_TOKEN=token)
    done = run(env, "orchestrator", "staging", sys.executable, "-c", PROBE)
    assert done.code == 0, done.stderr
    assert probe_output(done.stdout) == expected_environment("orchestrator", env)
    assert "VAULT_TOKEN" not in probe_output(done.stdout)


# --- failures: one line, exit 2, COMMAND never started ------------------------------------------------


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[list[str]]:
    """A COMMAND that creates a file: after a failure the file must not exist."""
    path = tmp_path / "started"
    yield [sys.executable, "-c", f"open({str(path)!r}, 'w').close()"]
    assert not path.exists(), "COMMAND was started"


def failed(done: Done) -> str:
    """The one error line of a failed run (exit 2)."""
    assert done.code == 2, done.stderr
    assert len(done.errors) == 1, done.stderr
    return done.errors[0].removeprefix("error: ")


@pytest.fixture(scope="module")
def broken(bao: BaoServer, root_client: hvac.Client, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Another namespace deployed the same way, then damaged by hand: execution-gateway's
    alpaca/api_key_id deleted; signal-service's policy without redis/password (the stack not re-run)."""
    namespace = unique_namespace()
    plan = layout(MANIFEST, "vault", namespace)
    deploy_for_run(bao, namespace)
    root_client.secrets.kv.v2.delete_metadata_and_all_versions(path=f"{namespace}/alpaca/api_key_id")
    narrowed = f'path "{plan.secret("DATABASE_PASSWORD").read_path}" {{ capabilities = ["read"] }}\n'
    root_client.sys.create_or_update_acl_policy(
        name=naming.vault_service_policy(namespace, "signal-service"), policy=narrowed
    )
    directory = tmp_path_factory.mktemp("broken-ids")
    env = {}
    for service in ("execution-gateway", "signal-service"):
        role = naming.approle_role(namespace, service)
        env[service] = base_env(
            VAULT_ADDR=bao.url,
            VAULT_ROLE_ID=role_id(root_client, role),
            VAULT_SECRET_ID_FILE=str(issue_secret_id(bao, role, directory)),
        )
    return {"namespace": namespace, "env": env}


def test_missing_secret(broken: dict[str, object], marker: list[str]) -> None:
    namespace, env = broken["namespace"], broken["env"]
    assert isinstance(namespace, str) and isinstance(env, dict)
    line = failed(run(env["execution-gateway"], "execution-gateway", namespace, *marker))
    assert line == f"SecretNotFoundError: Secret '{namespace}/alpaca/api_key_id' not found in Vault"


def test_denied_secret_is_an_error_not_a_gap(broken: dict[str, object], marker: list[str]) -> None:
    namespace, env = broken["namespace"], broken["env"]
    assert isinstance(namespace, str) and isinstance(env, dict)
    line = failed(run(env["signal-service"], "signal-service", namespace, *marker))
    assert line.startswith(
        f"VaultPermissionError: Permission denied (read on secret/data/{namespace}/redis/password): "
        "the token's policies do not grant it"
    )


def test_credentials_of_another_service_are_refused(
    bao: BaoServer, staging: dict[str, str], secret_ids: dict[str, Path], marker: list[str]
) -> None:
    env = approle_env(bao, staging, "execution-gateway", secret_ids["execution-gateway"])
    line = failed(run(env, "signal-service", "staging", *marker))
    assert line == (
        "VaultPermissionError: VAULT_ROLE_ID / secret_id log in as AppRole 'staging-execution-gateway', "
        "not 'staging-signal-service' (this service's role in this namespace)"
    )


@pytest.mark.parametrize(
    ("label", "secret_id", "extra"),
    [
        ("wrong secret_id", "not-a-secret-id", ()),
        ("wrong AppRole mount", None, ("--approle-mount", "no-such-mount")),
    ],
)
def test_login_refused(
    bao: BaoServer,
    staging: dict[str, str],
    secret_ids: dict[str, Path],
    marker: list[str],
    tmp_path: Path,
    label: str,
    secret_id: str | None,
    extra: tuple[str, ...],
) -> None:
    file = secret_ids["orchestrator"]
    if secret_id is not None:
        file = tmp_path / "secret-id"
        file.write_text(secret_id)
        file.chmod(0o400)
    env = approle_env(bao, staging, "orchestrator", file)
    line = failed(run(env, "orchestrator", "staging", *marker, extra=extra))
    mount = extra[1] if extra else "approle"
    assert line.startswith(f"VaultPermissionError: AppRole login refused at auth/{mount}/login ("), label


@pytest.mark.parametrize(
    ("label", "env", "expected"),
    [
        ("no address", {"VAULT_TOKEN": "t"}, "VaultConnectionError: no Vault address (set VAULT_ADDR)"),
        ("no login", {"VAULT_ADDR": "http://127.0.0.1:1"}, "VaultPermissionError: no Vault login: "),
        (
            "no secret_id",
            {"VAULT_ADDR": "http://127.0.0.1:1", "VAULT_ROLE_ID": "r"},
            "VaultPermissionError: VAULT_ROLE_ID is set but neither VAULT_SECRET_ID_FILE nor VAULT_SECRET_ID",
        ),
        (
            "unreadable secret_id file",
            {"VAULT_ADDR": "http://127.0.0.1:1", "VAULT_ROLE_ID": "r", "VAULT_SECRET_ID_FILE": "/nonexistent/id"},
            "VaultPermissionError: cannot read VAULT_SECRET_ID_FILE /nonexistent/id (No such file or directory)",
        ),
        (
            "not a URL",
            {"VAULT_ADDR": "127.0.0.1:8200", "VAULT_TOKEN": "t"},
            "VaultConnectionError: VAULT_ADDR must be ",
        ),
    ],
)
def test_no_usable_login(marker: list[str], label: str, env: dict[str, str], expected: str) -> None:
    line = failed(run(base_env(**env), "orchestrator", "staging", *marker))
    assert line.startswith(expected), label


def test_cannot_reach(marker: list[str]) -> None:
    addr = f"http://{HOST}:{free_port()}"
    line = failed(run(base_env(VAULT_ADDR=addr, VAULT_TOKEN="t"), "orchestrator", "staging", *marker))
    assert line == f"VaultConnectionError: cannot reach Vault at {addr}"


def test_timeout_is_bounded(marker: list[str]) -> None:
    """A server that accepts connections and never answers: the --timeout bounds the whole run."""
    with socket.socket() as silent:
        silent.bind((HOST, 0))
        silent.listen()
        addr = f"http://{HOST}:{silent.getsockname()[1]}"
        started = time.monotonic()
        done = run(
            base_env(VAULT_ADDR=addr, VAULT_TOKEN="t"), "orchestrator", "staging", *marker, extra=("--timeout", "1")
        )
        elapsed = time.monotonic() - started
    assert failed(done) == f"VaultConnectionError: Timeout connecting to Vault at {addr}"
    assert elapsed < 10


def test_sealed(tmp_path: Path, marker: list[str]) -> None:
    server = start_bao(tmp_path)
    try:
        hvac.Client(url=server.url, token=server.token).sys.seal()
        env = base_env(VAULT_ADDR=server.url, VAULT_ROLE_ID="r", VAULT_SECRET_ID="s")
        line = failed(run(env, "orchestrator", "staging", *marker))
    finally:
        server.stop()
    assert line == f"VaultConnectionError: Vault at {server.url} is sealed (unseal it first)"


def test_not_a_vault_server(moto: Server, marker: list[str]) -> None:
    line = failed(run(base_env(VAULT_ADDR=moto.url, VAULT_TOKEN="t"), "orchestrator", "staging", *marker))
    assert line.startswith(f"VaultConnectionError: {moto.url} is not a Vault server (HTTP ")
