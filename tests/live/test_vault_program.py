"""The real program on a real OpenBao: the runbook's own commands see the secrets, and each policy
grants exactly what the manifest says (checked with sys/capabilities and with real reads)."""

import subprocess
import uuid
from collections.abc import Callable, Iterator

import hvac
import pytest

from components import naming
from components.envfile import read_env
from components.manifest import load
from tests.conftest import EXAMPLE_ENV, REPO
from tests.harness import ProgramRun
from tests.live.conftest import deploy_vault, unique_namespace
from tests.live.servers import BaoServer, bao_binary

MANIFEST = load(REPO / "secrets.manifest.yaml")
VALUES = {k: e.value for k, e in read_env(EXAMPLE_ENV).items()}
SECRETS = sorted(MANIFEST.secrets)
WRITES = ("create", "update", "delete", "patch", "sudo")


@pytest.fixture(scope="module")
def staging(bao: BaoServer) -> ProgramRun:
    """`pulumi up --stack staging` against the live server (namespace staging, as in the runbook)."""
    return deploy_vault(bao, "staging")


@pytest.fixture(scope="module")
def neighbour(bao: BaoServer) -> str:
    """Another namespace with the same secrets, so 'denied elsewhere' is tested against data that exists."""
    namespace = unique_namespace()
    deploy_vault(bao, "staging", namespace)
    return namespace


def bao_cli(bao: BaoServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([bao_binary(), *args], env=bao.env, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("key", SECRETS)
def test_runbook_kv_get_prints_the_env_value(bao: BaoServer, staging: ProgramRun, key: str) -> None:
    path = f"secret/{naming.secret_name('staging', MANIFEST.secrets[key].path)}"
    done = bao_cli(bao, "kv", "get", "-field=value", path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == VALUES[key]


def test_runbook_kv_list_shows_the_groups(bao: BaoServer, staging: ProgramRun) -> None:
    done = bao_cli(bao, "kv", "list", "secret/staging/")
    assert done.returncode == 0, done.stderr
    listed = set(done.stdout.split())
    assert {"alpaca/", "database/", "redis/"} <= listed
    assert listed - {"Keys", "----"} == {"alpaca/", "database/", "redis/"}


@pytest.fixture(scope="module")
def token_for(root_client: hvac.Client) -> Iterator[Callable[[str], str]]:
    """policy name -> a token that carries only that policy (one per policy, revoked at the end)."""
    tokens: dict[str, str] = {}

    def token(policy: str) -> str:
        if policy not in tokens:
            created = root_client.auth.token.create(policies=[policy], no_default_policy=True, ttl="10m")
            tokens[policy] = created["auth"]["client_token"]
        return tokens[policy]

    yield token
    for t in tokens.values():
        root_client.auth.token.revoke(t)


def as_token(bao: BaoServer, token: str) -> hvac.Client:
    return hvac.Client(url=bao.url, token=token)


def read_value(client: hvac.Client, namespace: str, key: str) -> str:
    path = naming.secret_name(namespace, MANIFEST.secrets[key].path)
    answer = client.secrets.kv.v2.read_secret_version(path=path, mount_point="secret", raise_on_deleted_version=True)
    value: str = answer["data"]["data"]["value"]
    return value


@pytest.mark.parametrize("service", MANIFEST.services)
def test_service_policy_grants_exactly_its_secrets(
    bao: BaoServer,
    root_client: hvac.Client,
    staging: ProgramRun,
    neighbour: str,
    token_for: Callable[[str], str],
    service: str,
) -> None:
    policy = naming.vault_service_policy("staging", service)
    assert staging.exports["policies"][service] == policy
    token = token_for(policy)
    client = as_token(bao, token)
    own = {s.key for s in MANIFEST.readers_of(service)}
    assert own, "every runbook service reads something"
    paths = {
        (ns, key): naming.vault_data_path("secret", ns, MANIFEST.secrets[key].path)
        for ns in ("staging", neighbour)
        for key in SECRETS
    }
    caps = root_client.sys.get_capabilities(paths=list(paths.values()), token=token)
    for (ns, key), path in paths.items():
        if ns == "staging" and key in own:
            assert caps[path] == ["read"], path
            assert read_value(client, ns, key) == VALUES[key]
            with pytest.raises(hvac.exceptions.Forbidden):  # read-only: no writes, not even its own
                client.secrets.kv.v2.create_or_update_secret(
                    path=naming.secret_name(ns, MANIFEST.secrets[key].path), secret={"value": "x"}, mount_point="secret"
                )
        else:
            assert caps[path] == ["deny"], path
            with pytest.raises(hvac.exceptions.Forbidden):
                read_value(client, ns, key)
    with pytest.raises(hvac.exceptions.Forbidden):  # no listing either
        client.secrets.kv.v2.list_secrets(path="staging/", mount_point="secret")


def test_namespace_policy_lists_and_reads_its_namespace_only(
    bao: BaoServer, root_client: hvac.Client, staging: ProgramRun, neighbour: str, token_for: Callable[[str], str]
) -> None:
    token = token_for(naming.vault_namespace_policy("staging"))
    client = as_token(bao, token)
    listed = client.secrets.kv.v2.list_secrets(path="staging/", mount_point="secret")["data"]["keys"]
    assert set(listed) == {"alpaca/", "database/", "redis/"}
    for key in SECRETS:
        assert read_value(client, "staging", key) == VALUES[key]
        with pytest.raises(hvac.exceptions.Forbidden):
            read_value(client, neighbour, key)
    with pytest.raises(hvac.exceptions.Forbidden):
        client.secrets.kv.v2.list_secrets(path=f"{neighbour}/", mount_point="secret")
    with pytest.raises(hvac.exceptions.Forbidden):
        client.secrets.kv.v2.create_or_update_secret(path="staging/new", secret={"value": "x"}, mount_point="secret")
    outside = f"secret/data/{neighbour}/alpaca/api_key_id"
    inside = "secret/data/staging/alpaca/api_key_id"
    caps = root_client.sys.get_capabilities(paths=[inside, outside, "secret/metadata/staging/"], token=token)
    assert caps[inside] == ["read"]
    assert caps[outside] == ["deny"]
    assert set(caps["secret/metadata/staging/"]) == {"list", "read"}


def test_managed_mount_on_a_fresh_path_is_a_working_kv_v2(bao: BaoServer, root_client: hvac.Client) -> None:
    mount, namespace = f"kv{uuid.uuid4().hex[:8]}", unique_namespace()
    run = deploy_vault(bao, "staging", namespace, vaultMount=mount, vaultManageMount=True)
    assert [r.inputs["path"] for r in run.of_type("vault:index/mount:Mount")] == [mount]
    engine = root_client.sys.list_mounted_secrets_engines()["data"][f"{mount}/"]
    assert engine["type"] == "kv" and engine["options"]["version"] == "2"
    done = bao_cli(bao, "kv", "get", "-field=value", f"{mount}/{namespace}/database/password")
    assert done.returncode == 0, done.stderr
    assert done.stdout == VALUES["DATABASE_PASSWORD"]
    # Its policies name the new mount, not secret/.
    token = root_client.auth.token.create(
        policies=[naming.vault_service_policy(namespace, "signal-service")], no_default_policy=True, ttl="5m"
    )["auth"]["client_token"]
    assert read_value_at(bao, token, mount, namespace, "DATABASE_PASSWORD") == VALUES["DATABASE_PASSWORD"]
    root_client.auth.token.revoke(token)


def read_value_at(bao: BaoServer, token: str, mount: str, namespace: str, key: str) -> str:
    path = naming.secret_name(namespace, MANIFEST.secrets[key].path)
    answer = as_token(bao, token).secrets.kv.v2.read_secret_version(
        path=path, mount_point=mount, raise_on_deleted_version=True
    )
    value: str = answer["data"]["data"]["value"]
    return value
