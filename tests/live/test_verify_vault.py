"""`verify --backend vault` against a live OpenBao after the real program ran: all OK, then each kind of
drift made by hand, and the cases where it cannot check. Canary values never reach any output."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import hvac
import pytest

from components import naming
from components.manifest import dump, from_data, load
from tests.conftest import REPO
from tests.live.conftest import Outcome, deploy_vault, run_cli, unique_namespace
from tests.live.servers import BaoServer, clean_env, free_port, start_bao

MANIFEST = load(REPO / "secrets.manifest.yaml")
CANARIES = {key: f"CANARY-{key.lower()}-5f3a9c" for key in MANIFEST.secrets}
DRIFTED = "CANARY-drifted-value-0b7d"
FORBIDDEN = [*CANARIES.values(), DRIFTED]
FORBIDDEN += [hashlib.sha256(v.encode()).hexdigest() for v in list(FORBIDDEN)]


def assert_no_value(outcome: Outcome) -> None:
    for text in FORBIDDEN:
        assert text not in outcome.output


@pytest.fixture
def namespace(bao: BaoServer) -> str:
    """A fresh namespace deployed by the program with canary values."""
    ns = unique_namespace()
    deploy_vault(bao, "staging", ns, values=CANARIES, envFile="")
    return ns


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    path = tmp_path / ".env"
    path.write_text("".join(f"{k}={v}\n" for k, v in CANARIES.items()) + "LOG_LEVEL=INFO\n", encoding="utf-8")
    return path


def verify(bao_env: dict[str, str], namespace: str, *extra: str) -> Outcome:
    outcome = run_cli(bao_env, "verify", "--backend", "vault", "--namespace", namespace, *extra)
    assert_no_value(outcome)
    return outcome


def rows(outcome: Outcome) -> tuple[dict[str, str], dict[str, str]]:
    """(key -> status, service -> status) from the --json report."""
    report = json.loads(outcome.stdout)
    return {r["key"]: r["status"] for r in report["secrets"]}, {r["service"]: r["status"] for r in report["policies"]}


def test_all_ok_after_the_program_ran(bao: BaoServer, namespace: str, env_file: Path) -> None:
    table = verify(bao.env, namespace, "--env-file", str(env_file))
    assert table.code == 0, table.output
    assert table.stdout.strip().splitlines()[-1] == (
        f"✓ verify OK: 4/4 secrets OK; 6/6 policies OK (vault, namespace {namespace})"
    )
    assert f"secret/{namespace}/alpaca/api_key_id" in table.stdout
    report = verify(bao.env, namespace, "--env-file", str(env_file), "--json")
    assert report.code == 0
    secrets, policies = rows(report)
    assert secrets == dict.fromkeys(MANIFEST.secrets, "OK")
    assert policies == dict.fromkeys([*MANIFEST.services, "(namespace)"], "OK")
    assert json.loads(report.stdout)["ok"] is True


def test_policy_as_written_is_spot_checked_and_any_other_text_fully(bao: BaoServer, tmp_path: Path) -> None:
    """40 secrets: the program's own policy text gets a spot check; the same grants in other words, and a
    widened text, get every path checked."""
    namespace = unique_namespace()
    keys = [f"BIG_{i:02d}_TOKEN" for i in range(40)]
    readers = {k: ["a-svc" if i % 2 else "b-svc"] for i, k in enumerate(keys)}
    manifest = tmp_path / "big.manifest.yaml"
    manifest.write_text(
        dump(
            from_data(
                {"version": 1, "services": ["a-svc", "b-svc"], "secrets": {k: {"readers": readers[k]} for k in keys}}
            )
        ),
        encoding="utf-8",
    )
    deploy_vault(
        bao, "staging", namespace, manifest=str(manifest), values=dict.fromkeys(keys, "CANARY-big-0"), envFile=""
    )

    def a_svc() -> dict[str, str]:
        outcome = verify(bao.env, namespace, "--manifest", str(manifest), "--json")
        return next(r for r in json.loads(outcome.stdout)["policies"] if r["service"] == "a-svc")

    assert a_svc() == {
        "service": "a-svc",
        "policy": naming.vault_service_policy(namespace, "a-svc"),
        "status": "OK",
        "detail": "reads exactly its 20 secret(s) (text as the program writes it; 20 of 40 paths checked)",
    }
    own = sorted(k.removeprefix("BIG_").removesuffix("_TOKEN") for k in keys if readers[k] == ["a-svc"])
    same_grants = "".join(
        f'path "secret/data/{namespace}/big/{i}_token" {{ capabilities = ["read"] }}\n' for i in reversed(own)
    )
    client = hvac.Client(url=bao.url, token=bao.token)
    client.sys.create_or_update_acl_policy(name=naming.vault_service_policy(namespace, "a-svc"), policy=same_grants)
    assert a_svc()["detail"] == "reads exactly its 20 secret(s)"
    # One more exact path: invisible to a sample, found by the full check the changed text triggers.
    extra = f'path "secret/data/{namespace}/big/38_token" {{ capabilities = ["read"] }}\n'
    client.sys.create_or_update_acl_policy(
        name=naming.vault_service_policy(namespace, "a-svc"), policy=same_grants + extra
    )
    assert a_svc()["status"] == "OVER-GRANTED"
    assert a_svc()["detail"] == "can also read BIG_38_TOKEN"


def test_test_tokens_are_revoked(bao: BaoServer, root_client: hvac.Client, namespace: str) -> None:
    assert verify(bao.env, namespace).code == 0
    accessors = root_client.list("auth/token/accessors")["data"]["keys"]
    names = [root_client.auth.token.lookup_accessor(a)["data"]["display_name"] for a in accessors]
    assert not [n for n in names if "verify" in n]


def test_value_changed_behind_its_back_is_a_mismatch(
    bao: BaoServer, root_client: hvac.Client, namespace: str, env_file: Path
) -> None:
    root_client.secrets.kv.v2.create_or_update_secret(
        path=f"{namespace}/database/password", secret={"value": DRIFTED}, mount_point="secret"
    )
    outcome = verify(bao.env, namespace, "--env-file", str(env_file), "--json")
    assert outcome.code == 1
    secrets, policies = rows(outcome)
    assert secrets == {**dict.fromkeys(MANIFEST.secrets, "OK"), "DATABASE_PASSWORD": "MISMATCH"}
    assert set(policies.values()) == {"OK"}
    # Without --env-file nothing is compared: present is enough.
    assert verify(bao.env, namespace).code == 0


def test_deleted_secret_is_missing(bao: BaoServer, root_client: hvac.Client, namespace: str) -> None:
    root_client.secrets.kv.v2.delete_metadata_and_all_versions(path=f"{namespace}/redis/password", mount_point="secret")
    outcome = verify(bao.env, namespace)
    assert outcome.code == 1
    line = next(x for x in outcome.stdout.splitlines() if x.startswith("REDIS_PASSWORD"))
    assert "MISSING" in line
    assert f"SecretNotFoundError: Secret '{namespace}/redis/password' not found in Vault" in line
    assert "1 MISSING" in outcome.stdout.splitlines()[-1]


def test_soft_deleted_latest_version_is_missing(bao: BaoServer, root_client: hvac.Client, namespace: str) -> None:
    root_client.secrets.kv.v2.delete_latest_version_of_secret(path=f"{namespace}/redis/password", mount_point="secret")
    secrets, _ = rows(verify(bao.env, namespace, "--json"))
    assert secrets["REDIS_PASSWORD"] == "MISSING"


def widen(root_client: hvac.Client, policy: str, extra_hcl: str) -> None:
    current = root_client.sys.read_acl_policy(policy)["data"]["policy"]
    root_client.sys.create_or_update_acl_policy(name=policy, policy=current + "\n" + extra_hcl)


WIDENINGS = [
    ("another-secret", 'path "secret/data/{ns}/alpaca/*" {{ capabilities = ["read"] }}'),
    ("whole-namespace", 'path "secret/data/{ns}/*" {{ capabilities = ["read"] }}'),
    ("everything", 'path "secret/*" {{ capabilities = ["read", "list"] }}'),
    ("write-own", 'path "secret/data/{ns}/database/password" {{ capabilities = ["read", "update"] }}'),
    ("listing", 'path "secret/metadata/{ns}/*" {{ capabilities = ["list"] }}'),
]


@pytest.mark.parametrize(("label", "extra_hcl"), WIDENINGS, ids=[w[0] for w in WIDENINGS])
def test_policy_widened_by_hand_is_over_granted(
    bao: BaoServer, root_client: hvac.Client, namespace: str, label: str, extra_hcl: str
) -> None:
    widen(root_client, naming.vault_service_policy(namespace, "signal-service"), extra_hcl.format(ns=namespace))
    outcome = verify(bao.env, namespace, "--json")
    assert outcome.code == 1, label
    _, policies = rows(outcome)
    assert policies == {**dict.fromkeys([*MANIFEST.services, "(namespace)"], "OK"), "signal-service": "OVER-GRANTED"}


def test_namespace_policy_reaching_outside_is_over_granted(
    bao: BaoServer, root_client: hvac.Client, namespace: str
) -> None:
    widen(root_client, naming.vault_namespace_policy(namespace), 'path "secret/data/*" { capabilities = ["read"] }')
    _, policies = rows(verify(bao.env, namespace, "--json"))
    assert policies["(namespace)"] == "OVER-GRANTED"


def test_policy_narrowed_or_deleted_is_denied(bao: BaoServer, root_client: hvac.Client, namespace: str) -> None:
    root_client.sys.create_or_update_acl_policy(
        name=naming.vault_service_policy(namespace, "orchestrator"),
        policy=f'path "secret/data/{namespace}/redis/password" {{ capabilities = ["read"] }}',
    )
    root_client.sys.delete_acl_policy(naming.vault_service_policy(namespace, "risk-manager"))
    outcome = verify(bao.env, namespace)
    assert outcome.code == 1
    lines = outcome.stdout.splitlines()
    assert "cannot read DATABASE_PASSWORD" in next(x for x in lines if x.startswith("orchestrator"))
    assert "policy does not exist" in next(x for x in lines if x.startswith("risk-manager"))


def test_unreachable_vault_exits_2_with_the_runbook_error(namespace: str, bao: BaoServer) -> None:
    addr = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    outcome = verify({**bao.env, "VAULT_ADDR": addr}, namespace)
    assert outcome.code == 2
    assert outcome.stdout == ""
    assert outcome.stderr.strip().splitlines() == [f"error: VaultConnectionError: cannot reach Vault at {addr}"]
    as_json = verify({**bao.env, "VAULT_ADDR": addr}, namespace, "--json")
    assert json.loads(as_json.stdout) == {"ok": False, "error": f"VaultConnectionError: cannot reach Vault at {addr}"}


def test_stopped_and_sealed_servers_exit_2(tmp_path: Path) -> None:
    server = start_bao(tmp_path)
    try:
        hvac.Client(url=server.url, token=server.token).sys.seal()
        sealed = verify(server.env, "staging")
        assert sealed.code == 2
        assert (
            sealed.stderr.strip() == f"error: VaultConnectionError: Vault at {server.url} is sealed (unseal it first)"
        )
    finally:
        server.stop()
    stopped = verify(server.env, "staging")
    assert stopped.code == 2
    assert stopped.stderr.strip() == f"error: VaultConnectionError: cannot reach Vault at {server.url}"


def test_bad_or_absent_token_exits_2(bao: BaoServer, namespace: str) -> None:
    bad = verify({**bao.env, "VAULT_TOKEN": "not-a-token"}, namespace)
    assert bad.code == 2
    assert bad.stderr.strip() == f"error: permission denied: VAULT_TOKEN is not a valid token at {bao.url}"
    absent = verify({k: v for k, v in bao.env.items() if k != "VAULT_TOKEN"}, namespace)
    assert absent.code == 2 and "VAULT_TOKEN is not set" in absent.stderr


def test_token_that_cannot_read_exits_2_naming_the_path(
    bao: BaoServer, root_client: hvac.Client, namespace: str
) -> None:
    weak = root_client.auth.token.create(policies=["default"], ttl="5m")["auth"]["client_token"]
    outcome = verify({**bao.env, "VAULT_TOKEN": weak}, namespace)
    assert outcome.code == 2
    assert outcome.stderr.startswith("error: permission denied: VAULT_TOKEN cannot read secret/data/")
    assert len(outcome.stderr.strip().splitlines()) == 1


OPERATOR_POLICY = """
path "secret/data/{ns}/*" {{ capabilities = ["read"] }}
path "sys/policies/acl/{ns}-*" {{ capabilities = ["read"] }}
path "auth/token/create" {{ capabilities = ["create", "update"{sudo}] }}
path "sys/capabilities" {{ capabilities = ["update"] }}
path "auth/token/revoke" {{ capabilities = ["update"] }}
"""


def test_least_privilege_operator_token(bao: BaoServer, root_client: hvac.Client, namespace: str) -> None:
    """docs/verify.md lists what VAULT_TOKEN needs; that and nothing more is enough, sudo included."""
    for sudo in (True, False):
        name = f"{namespace}-verify-operator-{sudo}".lower()
        root_client.sys.create_or_update_acl_policy(
            name=name, policy=OPERATOR_POLICY.format(ns=namespace, sudo=', "sudo"' if sudo else "")
        )
        token = root_client.auth.token.create(policies=[name], ttl="5m")["auth"]["client_token"]
        outcome = verify({**bao.env, "VAULT_TOKEN": token}, namespace)
        if sudo:
            assert outcome.code == 0, outcome.output
        else:
            assert outcome.code == 2
            assert outcome.stderr.strip() == (
                f"error: permission denied: VAULT_TOKEN cannot create a token carrying "
                f"{naming.vault_service_policy(namespace, 'signal-service')} (it needs sudo on auth/token/create)"
            )


def test_the_command_line_entry_point(bao: BaoServer, namespace: str, env_file: Path) -> None:
    """The real `python -m components verify` process, environment-only credentials."""
    argv = ["verify", "--backend", "vault", "--namespace", namespace, "--env-file", str(env_file), "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "components", *argv, "--concurrency", "4"],
        env={**clean_env(), **bao.env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_no_value(Outcome(done.returncode, done.stdout, done.stderr))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] is True
