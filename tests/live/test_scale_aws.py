"""Issue 12 on real servers, through the lifecycle engine: a 300-secret AWS stack where one service reads
250 deploys, lints clean and verifies; a read tag added or removed by hand is caught; and a stack the
exact-ARN program (commit ed7b09e) deployed moves to attribute-based access with no secret replaced
(and, on Vault, with nothing replaced at all)."""

import json
import tarfile
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import hvac
import parliament
import pytest

from components.engine import Deployment, Engine
from components.manifest import Manifest, Secret, dump
from tests.conftest import EXAMPLE_ENV, REPO
from tests.live.conftest import Outcome, aws_env, run_cli, unique_namespace
from tests.live.servers import MOTO_ENV, BaoServer, Server

BULK, OTHER = "bulk-reader", "other-reader"
SECRETS, BULK_READS = 300, 250
KEYS = [f"APP_SECRET_{i:03d}_TOKEN" for i in range(SECRETS)]
MANIFEST = Manifest(
    (BULK, OTHER),
    {k: Secret(k, f"app/secret_{i:03d}_token", (BULK,) if i < BULK_READS else (OTHER,)) for i, k in enumerate(KEYS)},
)
OLD_PROGRAM = "ed7b09e"
"""The last commit with exact-ARN policies and env-key logical names (`secrets-<KEY>`)."""

AWS_SECRET = "aws:secretsmanager/secret:Secret"
AWS_VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
IAM_POLICY = "aws:iam/policy:Policy"
VAULT_SECRET = "vault:kv/secretV2:SecretV2"
APPROLE = "vault:appRole/authBackendRole:AuthBackendRole"
STACK = "pulumi:pulumi:Stack"


def client(moto: Server, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=moto.url,
        region_name=MOTO_ENV["AWS_REGION"],
        aws_access_key_id=MOTO_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=MOTO_ENV["AWS_SECRET_ACCESS_KEY"],
    )


def aws_config(namespace: str, **extra: object) -> dict[str, object]:
    return {
        "backend": "aws",
        "aws:region": MOTO_ENV["AWS_REGION"],
        "namespace": namespace,
        "allowNamespaceOverride": True,
        "awsRecoveryWindowInDays": 7,
        **extra,
    }


def verify_aws(moto: Server, namespace: str, *extra: str) -> Outcome:
    return run_cli(aws_env(moto), "verify", "--backend", "aws", "--namespace", namespace, "--json", *extra)


def statuses(outcome: Outcome) -> tuple[set[str], dict[str, tuple[str, str]]]:
    """(the secrets' statuses, service -> (status, detail)) from `verify --json`."""
    report = json.loads(outcome.stdout)
    return {r["status"] for r in report["secrets"]}, {
        r["service"]: (r["status"], r["detail"]) for r in report["policies"]
    }


def ops_per_type(deployment: Deployment) -> Counter[tuple[str, str]]:
    """(op, resource type) of every step the preview digest shows, the root stack left out."""
    steps = deployment.digest.get("steps", [])
    return Counter((s["op"], s["urn"].split("::")[2].split("$")[-1]) for s in steps if STACK not in s["urn"])


# --- 300 secrets, one service reading 250 --------------------------------------------------------------


class Scaled:
    def __init__(self, moto: Server, folder: Path) -> None:
        self.moto, self.namespace = moto, unique_namespace()
        self.manifest, self.env_file = folder / "secrets.manifest.yaml", folder / ".env"
        self.manifest.write_text(dump(MANIFEST), encoding="utf-8")
        self.env_file.write_text("".join(f"{k}=FAKE-scale-{i:03d}\n" for i, k in enumerate(KEYS)), encoding="utf-8")
        config = aws_config(self.namespace, manifest=str(self.manifest), envFile=str(self.env_file))
        self.deployed = Engine(aws_endpoint=moto.url).up("staging", config)

    def secret(self, index: int) -> str:
        return f"{self.namespace}/app/secret_{index:03d}_token"

    def verify(self) -> tuple[set[str], dict[str, tuple[str, str]]]:
        outcome = verify_aws(
            self.moto, self.namespace, "--manifest", str(self.manifest), "--env-file", str(self.env_file)
        )
        assert "FAKE-scale" not in outcome.output
        return statuses(outcome)


@pytest.fixture(scope="module")
def scaled(moto: Server, tmp_path_factory: pytest.TempPathFactory) -> Scaled:
    """One deploy for the module; each drift case puts the tags back."""
    return Scaled(moto, tmp_path_factory.mktemp("scaled"))


def test_a_service_reading_250_of_300_secrets_deploys_lints_clean_and_verifies(scaled: Scaled) -> None:
    assert Counter(t for _, t, _ in scaled.deployed.changes()) == {
        STACK: 1,
        "secrets-migration:index:AwsSecretStore": 1,
        AWS_SECRET: 300,
        AWS_VERSION: 300,
        IAM_POLICY: 3,
    }
    iam = client(scaled.moto, "iam")
    names = [f"{scaled.namespace}-{BULK}-secrets-read", f"{scaled.namespace}-{OTHER}-secrets-read"]
    names.append(f"{scaled.namespace}-secrets-read")
    for name in names:
        arn = f"arn:aws:iam::123456789012:policy/{name}"
        version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
        document = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
        assert parliament.analyze_policy_string(json.dumps(document)).findings == [], name
    secrets, policies = scaled.verify()
    assert secrets == {"OK"}
    assert policies == {
        BULK: ("OK", "reads exactly its 250 secret(s)"),
        OTHER: ("OK", "reads exactly its 50 secret(s)"),
        "(namespace)": ("OK", "reads exactly its 300 secret(s)"),
    }


def test_a_read_tag_added_by_hand_is_over_granted_and_one_removed_is_denied(scaled: Scaled) -> None:
    sm = client(scaled.moto, "secretsmanager")
    bulk_only, also_bulk = scaled.secret(0), scaled.secret(1)
    sm.tag_resource(SecretId=bulk_only, Tags=[{"Key": f"read-{OTHER}", "Value": "true"}])
    sm.untag_resource(SecretId=also_bulk, TagKeys=[f"read-{BULK}"])
    try:
        _, policies = scaled.verify()
    finally:
        sm.untag_resource(SecretId=bulk_only, TagKeys=[f"read-{OTHER}"])
        sm.tag_resource(SecretId=also_bulk, Tags=[{"Key": f"read-{BULK}", "Value": "true"}])
    assert policies[OTHER] == ("OVER-GRANTED", f"can also read {KEYS[0]}")
    assert policies[BULK] == ("DENIED", f"cannot read {KEYS[1]}")
    assert policies["(namespace)"][0] == "OK"
    assert scaled.verify()[1][BULK][0] == "OK"  # put back


# --- a stack the exact-ARN program deployed ------------------------------------------------------------


@pytest.fixture(scope="module")
def old_program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Commit ed7b09e's program and project files (the last release with exact-ARN policies and env-key
    logical names), from tests/fixtures/releases/: a snapshot of our own previous release, so the upgrade
    is proven on any checkout, shallow or not. Made with
    `git archive --format=tar ed7b09e __main__.py Pulumi.yaml Pulumi.staging.yaml secrets.manifest.yaml
    components/{__init__,naming,settings,manifest,envfile,errors,vault_store,aws_store,policies}.py | gzip -9n`."""
    folder = tmp_path_factory.mktemp("old-program")
    with tarfile.open(REPO / "tests" / "fixtures" / "releases" / f"{OLD_PROGRAM}-program.tar.gz") as tar:
        tar.extractall(folder, filter="data")
    return folder / "__main__.py"


def test_an_exact_arn_aws_stack_moves_with_no_secret_replaced(moto: Server, old_program: Path) -> None:
    """Secrets get their read tags in place, the service policies their new documents; the aliases
    (`secrets-<KEY>`) carry every Secret and SecretVersion, so none is created, replaced or deleted."""
    namespace = unique_namespace()
    config = aws_config(namespace, envFile=str(EXAMPLE_ENV))
    old = Engine(aws_endpoint=moto.url, program=old_program)
    old.up("staging", config)
    assert any(r.name == "secrets-DATABASE_PASSWORD" for r in old.state("staging").resources)
    sm = client(moto, "secretsmanager")
    before = {
        s["Name"]: s["ARN"]
        for s in sm.list_secrets(Filters=[{"Key": "name", "Values": [f"{namespace}/"]}])["SecretList"]
    }
    versions = {n: sm.get_secret_value(SecretId=arn)["VersionId"] for n, arn in before.items()}

    new = Engine(aws_endpoint=moto.url, states=old.states)
    planned = new.preview("staging", config)
    assert ops_per_type(planned) == {("update", AWS_SECRET): 4, ("update", IAM_POLICY): 5}
    assert planned.digest["changeSummary"] == {"same": 7, "update": 9}
    for step in (s for s in planned.digest["steps"] if STACK not in s["urn"]):
        kind = step["urn"].split("::")[2].split("$")[-1]
        assert step["diffReasons"] == (["tags"] if kind == AWS_SECRET else ["policy"]), step["urn"]
        assert "replaceReasons" not in step

    new.up("staging", config)
    after = {
        s["Name"]: s["ARN"]
        for s in sm.list_secrets(Filters=[{"Key": "name", "Values": [f"{namespace}/"]}])["SecretList"]
    }
    assert after == before  # the same secrets, not new ones under the same names
    assert {n: sm.get_secret_value(SecretId=arn)["VersionId"] for n, arn in after.items()} == versions
    outcome = verify_aws(moto, namespace, "--env-file", str(EXAMPLE_ENV))
    assert outcome.code == 0, outcome.output
    secrets, policies = statuses(outcome)
    assert secrets == {"OK"} and {status for status, _ in policies.values()} == {"OK"}


def test_an_exact_arn_vault_stack_moves_with_nothing_replaced(
    bao: BaoServer, root_client: hvac.Client, old_program: Path
) -> None:
    """Same names, same policies: the only change is each service's new AppRole role."""
    namespace = unique_namespace()
    config: dict[str, object] = {
        "namespace": namespace,
        "allowNamespaceOverride": True,
        "envFile": str(EXAMPLE_ENV),
        "vault:address": bao.url,
        "vault:token": bao.token,
    }
    old = Engine(program=old_program)
    old.up("staging", config, secret_keys=["vault:token"])
    assert any(r.name == "secrets-DATABASE_PASSWORD" for r in old.state("staging").resources)

    new = Engine(states=old.states)
    planned = new.preview("staging", config, secret_keys=["vault:token"])
    assert ops_per_type(planned) == {("create", APPROLE): 5}
    assert planned.digest["changeSummary"] == {"same": 12, "create": 5}
    new.up("staging", config, secret_keys=["vault:token"])
    metadata = root_client.secrets.kv.v2.read_secret_metadata(f"{namespace}/database/password", mount_point="secret")
    assert metadata["data"]["current_version"] == 1  # not rewritten
    outcome = run_cli(
        bao.env, "verify", "--backend", "vault", "--namespace", namespace, "--json", "--env-file", str(EXAMPLE_ENV)
    )
    assert outcome.code == 0, outcome.output
    secrets, policies = statuses(outcome)
    assert secrets == {"OK"} and {status for status, _ in policies.values()} == {"OK"}
