"""`verify --backend vault` against a live OpenBao after the real program ran: all OK, every kind of drift
made by hand (a table an attacker would try: outside-namespace grants, extra capabilities, globs,
attributes, templates), an operator token whose identity entity carries more, AppRole roles, and the
cases where it cannot check. Canary values never reach any output."""

import hashlib
import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import hvac
import pytest

from components import naming
from components.layout import layout
from components.manifest import dump, from_data, load
from components.verify.deadline import Deadline
from components.verify.options import VerifyOptions
from components.verify.vault import VaultChecker
from tests.conftest import REPO
from tests.live.conftest import Outcome, deploy_vault, run_cli, unique_namespace
from tests.live.servers import BaoServer, Server, clean_env, free_port, start_bao

MANIFEST = load(REPO / "secrets.manifest.yaml")
CANARIES = {key: f"CANARY-{key.lower()}-5f3a9c" for key in MANIFEST.secrets}
DRIFTED = "CANARY-drifted-value-0b7d"
FORBIDDEN = [*CANARIES.values(), DRIFTED]
FORBIDDEN += [hashlib.sha256(v.encode()).hexdigest() for v in list(FORBIDDEN)]
ALL_ROWS = [*MANIFEST.services, "(namespace)"]


def assert_no_value(outcome: Outcome) -> None:
    for text in FORBIDDEN:
        assert text not in outcome.output


def deploy(bao: BaoServer, **extra: object) -> str:
    """A fresh namespace deployed by the program with canary values (AppRole off unless asked)."""
    ns = unique_namespace()
    deploy_vault(bao, "staging", ns, **{"values": CANARIES, "envFile": "", "vaultAppRole": False, **extra})
    return ns


@pytest.fixture
def namespace(bao: BaoServer) -> str:
    return deploy(bao)


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


def details(outcome: Outcome) -> dict[str, str]:
    return {r["service"]: r["detail"] for r in json.loads(outcome.stdout)["policies"]}


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
    assert policies == dict.fromkeys(ALL_ROWS, "OK")
    assert json.loads(report.stdout)["ok"] is True


def test_policy_as_written_is_spot_probed_and_any_other_text_judged_and_fully_probed(
    bao: BaoServer, tmp_path: Path
) -> None:
    """40 secrets: the program's own text gets a spot probe; the same grants in other words pass the rule
    by rule judgement; one more exact path, outside any sample, is OVER-GRANTED."""
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
        bao,
        "staging",
        namespace,
        manifest=str(manifest),
        values=dict.fromkeys(keys, "CANARY-big-0"),
        envFile="",
        vaultAppRole=False,
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
    extra = f'path "secret/data/{namespace}/big/38_token" {{ capabilities = ["read"] }}\n'
    client.sys.create_or_update_acl_policy(
        name=naming.vault_service_policy(namespace, "a-svc"), policy=same_grants + extra
    )
    assert a_svc()["status"] == "OVER-GRANTED"
    assert a_svc()["detail"].startswith("can also read BIG_38_TOKEN; sys/capabilities also shows read on BIG_38_TOKEN")


def test_probe_tokens_are_revoked(bao: BaoServer, root_client: hvac.Client, namespace: str) -> None:
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


# --- drift an attacker (or a hurried operator) would make: none may give a false OK --------------------

SERVICE = "signal-service"
# (label, HCL added to signal-service's policy, a phrase of its detail)
WIDENINGS = [
    ("outside-namespace", 'path "secret/data/prod/*" { capabilities = ["read"] }', 'path "secret/data/prod/*"'),
    ("sudo-on-sys", 'path "sys/*" { capabilities = ["sudo"] }', 'path "sys/*" [sudo]'),
    ("another-secret", 'path "secret/data/{ns}/alpaca/*" { capabilities = ["read"] }', "alpaca/*"),
    (
        "whole-namespace",
        'path "secret/data/{ns}/*" { capabilities = ["read"] }',
        "sys/capabilities also shows read on ALPACA_API_KEY_ID",
    ),
    ("everything", 'path "secret/*" { capabilities = ["read", "list"] }', 'path "secret/*" [list, read]'),
    ("segment-glob", 'path "secret/data/+/redis/password" { capabilities = ["read"] }', "+/redis/password"),
    (
        "write-own",
        'path "secret/data/{ns}/database/password" { capabilities = ["read", "update"] }',
        "can also update DATABASE_PASSWORD",
    ),
    (
        "repeated-attribute",
        'path "secret/data/{ns}/redis/password" {\n capabilities = ["read"]\n capabilities = ["delete"]\n}',
        "can also delete REDIS_PASSWORD",
    ),
    (
        "allowed-parameters",
        'path "secret/data/{ns}/redis/password" {\n capabilities = ["read"]\n allowed_parameters = { "*" = [] }\n}',
        "attribute allowed_parameters",
    ),
    (
        "wrapping-ttl",
        'path "secret/data/{ns}/redis/password" {\n capabilities = ["read"]\n min_wrapping_ttl = "1s"\n}',
        "attribute min_wrapping_ttl",
    ),
    ("listing", 'path "secret/metadata/{ns}/*" { capabilities = ["list"] }', "metadata"),
    ("mint-tokens", 'path "auth/token/create" { capabilities = ["update", "sudo"] }', "auth/token/create"),
    ("templated", 'path "secret/data/{{identity.entity.id}}/*" { capabilities = ["read"] }', "plain path"),
    ("escaped", 'path "secret/data/{ns}/\\u0061lpaca/api_key_id" { capabilities = ["read"] }', "plain path"),
]


@pytest.mark.parametrize(("label", "extra_hcl", "phrase"), WIDENINGS, ids=[w[0] for w in WIDENINGS])
def test_policy_widened_by_hand_is_over_granted(
    bao: BaoServer, root_client: hvac.Client, namespace: str, label: str, extra_hcl: str, phrase: str
) -> None:
    policy = naming.vault_service_policy(namespace, SERVICE)
    current = root_client.sys.read_acl_policy(policy)["data"]["policy"]
    root_client.sys.create_or_update_acl_policy(
        name=policy, policy=current + "\n" + extra_hcl.replace("{ns}", namespace)
    )
    outcome = verify(bao.env, namespace, "--json")
    assert outcome.code == 1, label
    _, policies = rows(outcome)
    assert policies == {**dict.fromkeys(ALL_ROWS, "OK"), SERVICE: "OVER-GRANTED"}
    assert phrase in details(outcome)[SERVICE]


def test_policy_in_vaults_json_form_is_over_granted(bao: BaoServer, root_client: hvac.Client, namespace: str) -> None:
    """Vault also takes JSON policies; the HCL parser cannot read them, so they are never trusted."""
    own = {f"secret/data/{namespace}/{p}": {"capabilities": ["read"]} for p in ("database/password", "redis/password")}
    root_client.sys.create_or_update_acl_policy(
        name=naming.vault_service_policy(namespace, SERVICE), policy=json.dumps({"path": own})
    )
    outcome = verify(bao.env, namespace, "--json")
    assert rows(outcome)[1][SERVICE] == "OVER-GRANTED"
    assert "cannot be parsed" in details(outcome)[SERVICE]


def test_namespace_policy_reaching_outside_is_over_granted(
    bao: BaoServer, root_client: hvac.Client, namespace: str
) -> None:
    policy = naming.vault_namespace_policy(namespace)
    current = root_client.sys.read_acl_policy(policy)["data"]["policy"]
    root_client.sys.create_or_update_acl_policy(
        name=policy, policy=current + '\npath "secret/data/*" { capabilities = ["read"] }'
    )
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


# --- an operator token that belongs to an identity entity (issue 9, item 2) ---------------------------


OPERATOR_POLICY = """
path "secret/data/{ns}/*" {{ capabilities = ["read"] }}
path "sys/policies/acl/{ns}-*" {{ capabilities = ["read"] }}
path "auth/token/create-orphan" {{ capabilities = ["create", "update"{sudo}] }}
path "sys/capabilities" {{ capabilities = ["update"] }}
path "auth/token/revoke" {{ capabilities = ["update"] }}
path "sys/auth" {{ capabilities = ["read"] }}
path "auth/approle/role/{ns}-*" {{ capabilities = ["read"] }}
path "identity/lookup/entity" {{ capabilities = ["update"] }}
path "identity/group/id/*" {{ capabilities = ["read"] }}
"""
GROUP_GRANTS_MORE = """
path "secret/data/*" { capabilities = ["read", "update"] }
path "secret/metadata/*" { capabilities = ["read", "list"] }
path "sys/*" { capabilities = ["read", "sudo"] }
"""


def entity_token(root_client: hvac.Client, namespace: str) -> str:
    """A userpass login whose entity is in a group granting far more than any service policy."""
    mount = f"userpass-{namespace}"
    root_client.sys.enable_auth_method("userpass", path=mount)
    operator, group = f"{namespace}-verify-operator", f"{namespace}-wide-group"
    # Child tokens too (not only orphans), so the same test shows what a verify minting children would see.
    children = 'path "auth/token/create" { capabilities = ["create", "update", "sudo"] }\n'
    root_client.sys.create_or_update_acl_policy(
        name=operator, policy=OPERATOR_POLICY.format(ns=namespace, sudo=', "sudo"') + children
    )
    root_client.sys.create_or_update_acl_policy(name=group, policy=GROUP_GRANTS_MORE)
    password = uuid.uuid4().hex
    root_client.write(f"auth/{mount}/users/operator", password=password, token_policies=[operator])
    login = hvac.Client(url=root_client.url).auth.userpass.login("operator", password, mount_point=mount)["auth"]
    assert login["entity_id"]
    root_client.write("identity/group", name=group, policies=[group], member_entity_ids=[login["entity_id"]])
    return str(login["client_token"])


def test_a_token_with_an_entity_gives_the_same_verdicts(bao: BaoServer, root_client: hvac.Client) -> None:
    """The entity's group grants read/update on every secret and sudo on sys/*. Child tokens would inherit
    it; verify's probe tokens are orphans without an entity, so every verdict equals the root token's:
    no false OVER-GRANTED for right policies, and no false OK or missed DENIED for drifted ones."""
    namespace = deploy(bao)
    token = entity_token(root_client, namespace)
    as_operator = {**bao.env, "VAULT_TOKEN": token}

    right = verify(as_operator, namespace, "--json")
    assert right.code == 0, right.output
    assert rows(right)[1] == dict.fromkeys(ALL_ROWS, "OK")
    assert "skipped" not in right.stdout

    widen = naming.vault_service_policy(namespace, SERVICE)
    current = root_client.sys.read_acl_policy(widen)["data"]["policy"]
    root_client.sys.create_or_update_acl_policy(
        name=widen, policy=current + f'\npath "secret/data/{namespace}/alpaca/api_key_id" {{ capabilities = ["read"] }}'
    )
    root_client.sys.create_or_update_acl_policy(
        name=naming.vault_service_policy(namespace, "orchestrator"),
        policy=f'path "secret/data/{namespace}/redis/password" {{ capabilities = ["read"] }}',
    )
    drifted = verify(as_operator, namespace, "--json")
    as_root = verify(bao.env, namespace, "--json")
    assert drifted.code == 1
    expected = {**dict.fromkeys(ALL_ROWS, "OK"), SERVICE: "OVER-GRANTED", "orchestrator": "DENIED"}
    assert rows(drifted)[1] == rows(as_root)[1] == expected
    assert details(drifted) == details(as_root)
    assert "sys/capabilities also shows read on ALPACA_API_KEY_ID" in details(drifted)[SERVICE]


def test_a_probe_token_with_an_entity_skips_the_probes_and_says_so(bao: BaoServer, root_client: hvac.Client) -> None:
    """Orphans carry no entity on OpenBao; should a probe token still have one (another Vault version), its
    answers would include the entity's policies. Here a real token with an entity (a token role with an
    entity alias) stands in for such a server: the probes are skipped, the detail says so, and the
    verdict still comes from the text."""
    namespace = deploy(bao)
    role, alias = f"{namespace}-probe", f"{namespace}-alias"
    plan = layout(MANIFEST, "vault", namespace)
    root_client.write(
        f"auth/token/roles/{role}",
        allowed_policies=[p.name for p in plan.policies],
        allowed_entity_aliases=[alias],
        orphan=True,
        token_no_default_policy=True,
    )

    class EntityProbes(VaultChecker):
        def probe_token(self, policy: str) -> tuple[str, str]:
            created = self.client.auth.token.create(
                policies=[policy], ttl="2m", role_name=role, entity_alias=alias, no_default_policy=True
            )["auth"]
            return str(created["client_token"]), str(created["entity_id"])

    options = VerifyOptions(
        backend="vault", namespace=namespace, vault_addr=bao.url, vault_token=bao.token, approle="off"
    )
    checker = EntityProbes(options, plan, Deadline(60, "VaultConnectionError", "Vault", bao.url))
    checker.preflight()
    right = checker.check_policy(SERVICE)
    assert right.status == "OK"
    assert "sys/capabilities probes skipped: the probe token belongs to identity entity" in right.detail
    policy = naming.vault_service_policy(namespace, SERVICE)
    current = root_client.sys.read_acl_policy(policy)["data"]["policy"]
    root_client.sys.create_or_update_acl_policy(
        name=policy, policy=current + '\npath "secret/data/prod/*" { capabilities = ["read"] }'
    )
    wide = checker.check_policy(SERVICE)
    assert wide.status == "OVER-GRANTED"
    assert wide.detail.startswith(
        'rules beyond its grants: path "secret/data/prod/*" [read]; sys/capabilities probes skipped'
    )


# --- AppRole roles (issue 11) ------------------------------------------------------------------------------


def approle_namespace(bao: BaoServer, root_client: hvac.Client) -> tuple[str, str]:
    """A namespace whose roles live in their own AppRole mount (the shared server's `approle/` stays
    absent, so other tests see no roles). The roles are written as the program's AuthBackendRole does."""
    namespace, mount = unique_namespace(), f"approle-{uuid.uuid4().hex[:8]}"
    root_client.sys.enable_auth_method("approle", path=mount)
    deploy_vault(
        bao, "staging", namespace, values=CANARIES, envFile="", vaultAppRole=False
    )  # the engine does not create roles yet: write them as vault_store would
    for service in MANIFEST.services:
        root_client.write(
            f"auth/{mount}/role/{naming.approle_role(namespace, service)}",
            token_policies=[naming.vault_service_policy(namespace, service)],
            token_no_default_policy=True,
            bind_secret_id=True,
            token_ttl=600,
            token_max_ttl=1800,
        )
    return namespace, mount


def roles(outcome: Outcome) -> dict[str, tuple[str, str]]:
    return {r["service"]: (r["status"], r["detail"]) for r in json.loads(outcome.stdout)["roles"]}


def test_approle_roles_carry_exactly_their_policy(bao: BaoServer, root_client: hvac.Client) -> None:
    namespace, mount = approle_namespace(bao, root_client)
    table = verify(bao.env, namespace, "--approle-mount", mount)
    assert table.code == 0, table.output
    assert table.stdout.strip().splitlines()[-1] == (
        f"✓ verify OK: 4/4 secrets OK; 6/6 policies OK; 5/5 roles OK (vault, namespace {namespace})"
    )
    assert f"{namespace}-signal-service" in table.stdout

    def role_path(service: str) -> str:
        return f"auth/{mount}/role/{naming.approle_role(namespace, service)}"

    root_client.write(role_path("signal-service"), token_policies=["default", "root"])
    root_client.write(role_path("orchestrator"), token_no_default_policy=False)
    root_client.write(role_path("risk-manager"), bind_secret_id=False, secret_id_bound_cidrs=["127.0.0.1/32"])
    root_client.write(
        role_path("execution-gateway"), policies=[naming.vault_service_policy(namespace, "execution-gateway")]
    )
    root_client.delete(role_path("market-data-service"))
    outcome = verify(bao.env, namespace, "--approle-mount", mount, "--json")
    assert outcome.code == 1
    found = roles(outcome)
    assert {s: status for s, (status, _) in found.items()} == {
        "signal-service": "OVER-GRANTED",
        "execution-gateway": "OVER-GRANTED",
        "orchestrator": "OVER-GRANTED",
        "market-data-service": "DENIED",
        "risk-manager": "OVER-GRANTED",
    }
    assert "token_policies also grant default, root" in found["signal-service"][1]
    assert "legacy `policies` field" in found["execution-gateway"][1]
    assert "default policy" in found["orchestrator"][1]
    assert "without a secret_id" in found["risk-manager"][1]
    assert found["market-data-service"][1] == "role does not exist"
    assert json.loads(outcome.stdout)["summary"].endswith(f"1 DENIED (vault, namespace {namespace})")


APPROLE_OPERATOR_POLICY = """
path "auth/{mount}/role/{ns}-*" {{ capabilities = ["read"] }}
path "identity/lookup/entity" {{ capabilities = ["update"] }}
path "identity/group/id/*" {{ capabilities = ["read"] }}
"""


def test_approle_login_identity_is_part_of_what_a_role_grants(bao: BaoServer, root_client: hvac.Client) -> None:
    """AppRole logins of a role share one identity entity; a policy on it or on one of its groups is added
    to every login, so the role no longer carries exactly its read policy. docs/verify.md's operator
    policy for the AppRole check is enough to see it."""
    namespace, mount = approle_namespace(bao, root_client)
    role = naming.approle_role(namespace, SERVICE)
    role_id = root_client.auth.approle.read_role_id(role, mount_point=mount)["data"]["role_id"]
    secret_id = root_client.auth.approle.generate_secret_id(role, mount_point=mount)["data"]["secret_id"]
    login = hvac.Client(url=bao.url).auth.approle.login(role_id, secret_id, mount_point=mount)["auth"]
    operator = f"{namespace}-verify-operator"
    root_client.sys.create_or_update_acl_policy(
        name=operator,
        policy=OPERATOR_POLICY.format(ns=namespace, sudo=', "sudo"')
        + APPROLE_OPERATOR_POLICY.format(mount=mount, ns=namespace),
    )
    token = root_client.auth.token.create(policies=[operator], ttl="5m")["auth"]["client_token"]
    as_operator = {**bao.env, "VAULT_TOKEN": token}
    before = verify(as_operator, namespace, "--approle-mount", mount)
    assert before.code == 0, before.output  # a login alone adds nothing

    group = f"{namespace}-ops"
    root_client.secrets.identity.create_or_update_group(
        name=group, policies=[naming.vault_namespace_policy(namespace)], member_entity_ids=[login["entity_id"]]
    )
    outcome = verify(as_operator, namespace, "--approle-mount", mount, "--json")
    assert outcome.code == 1
    found = roles(outcome)
    assert found[SERVICE] == (
        "OVER-GRANTED",
        f"its logins also get {naming.vault_namespace_policy(namespace)} (group {group}) through their identity",
    )
    assert {s for s, (status, _) in found.items() if status != "OK"} == {SERVICE}
    assert set(rows(outcome)[1].values()) == {"OK"}  # the policies themselves are right


def test_approle_absent_is_said_never_silent(tmp_path: Path) -> None:
    """On a server of its own: the shared one has AppRole enabled by the stacks other tests deploy."""
    bao = start_bao(tmp_path)
    try:
        _approle_absent(bao, deploy(bao))
    finally:
        bao.stop()


def _approle_absent(bao: BaoServer, namespace: str) -> None:
    auto = verify(bao.env, namespace)
    assert auto.code == 0
    assert "note: AppRole roles not checked: no AppRole auth mount at auth/approle/" in auto.stdout
    required = verify(bao.env, namespace, "--approle-mount", "approle", "--json")
    assert required.code == 1
    assert set(roles(required).values()) == {("DENIED", "no AppRole auth mount at auth/approle")}
    off = verify(bao.env, namespace, "--no-approle", "--json")
    assert off.code == 0 and json.loads(off.stdout)["notes"] == ["AppRole roles not checked (--no-approle)"]


# --- cannot check: one line, exit 2 -------------------------------------------------------------------------


def test_unreachable_vault_exits_2_with_the_runbook_error(namespace: str, bao: BaoServer) -> None:
    addr = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    outcome = verify({**bao.env, "VAULT_ADDR": addr}, namespace)
    assert outcome.code == 2
    assert outcome.stdout == ""
    line = f"VaultConnectionError: cannot reach Vault at {addr} (checking sys/health)"
    assert outcome.stderr.strip().splitlines() == [f"error: {line}"]
    as_json = verify({**bao.env, "VAULT_ADDR": addr}, namespace, "--json")
    assert json.loads(as_json.stdout) == {"ok": False, "error": line}


def test_a_server_that_is_not_vault_is_named_so(bao: BaoServer, moto: Server) -> None:
    outcome = verify({**bao.env, "VAULT_ADDR": moto.url}, "staging")
    assert outcome.code == 2
    assert outcome.stderr.strip().splitlines() == [
        f"error: VaultConnectionError: {moto.url} is not a Vault server "
        "(GET /v1/sys/health answered HTTP 404 without Vault's health fields)"
    ]


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
    assert stopped.stderr.strip().startswith(f"error: VaultConnectionError: cannot reach Vault at {server.url}")


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
    # Reads and policy checks run in parallel: whichever is refused first is named.
    assert outcome.stderr.startswith("error: permission denied: VAULT_TOKEN cannot read ")
    assert len(outcome.stderr.strip().splitlines()) == 1


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
            # Policies are checked in parallel: whichever probe token is refused first is named.
            assert re.fullmatch(
                f"error: permission denied: VAULT_TOKEN cannot create a token carrying {namespace}-[a-z-]+-read "
                r"\(it needs sudo on auth/token/create-orphan\)",
                outcome.stderr.strip(),
            ), outcome.stderr


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
