"""`verify --backend aws` against moto after the real program ran (attribute-based access, issue 12): all
OK, drift an attacker would make to the policies or the tags (every case must be caught, none may give a
false OK), the batch fallback, the region, and the cases where it cannot check. Canary values never
reach any output."""

import copy
import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from components import naming
from components.manifest import load
from tests.conftest import REPO
from tests.live.conftest import Outcome, aws_env, deploy_aws, run_cli
from tests.live.servers import MOTO_ENV, Server, clean_env, free_port, reset_moto, start_moto

MANIFEST = load(REPO / "secrets.manifest.yaml")
CANARIES = {key: f"CANARY-aws-{key.lower()}-93be" for key in MANIFEST.secrets}
DRIFTED = "CANARY-aws-drifted-41c0"
FORBIDDEN = [*CANARIES.values(), DRIFTED]
FORBIDDEN += [hashlib.sha256(v.encode()).hexdigest() for v in list(FORBIDDEN)]
ALL_ROWS = [*MANIFEST.services, "(namespace)"]
ACCOUNT = "123456789012"
SVC = "signal-service"


def client(moto: Server, service: str) -> Any:
    return boto3.client(
        service, endpoint_url=moto.url, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )


def verify(env: dict[str, str], *extra: str) -> Outcome:
    outcome = run_cli(env, "verify", "--backend", "aws", "--namespace", "staging", *extra)
    for text in FORBIDDEN:
        assert text not in outcome.output
    return outcome


def rows(outcome: Outcome) -> tuple[dict[str, str], dict[str, str]]:
    report = json.loads(outcome.stdout)
    return {r["key"]: r["status"] for r in report["secrets"]}, {r["service"]: r["status"] for r in report["policies"]}


def details(outcome: Outcome) -> dict[str, str]:
    return {r["service"]: r["detail"] for r in json.loads(outcome.stdout)["policies"]}


def policy_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:policy/{name}"


@pytest.fixture(scope="module")
def deployed(moto: Server) -> Server:
    """One deploy for the module's drift cases; each case undoes its own drift."""
    reset_moto(moto.url)
    deploy_aws(moto, values=CANARIES, envFile="")
    return moto


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    path = tmp_path / ".env"
    path.write_text("".join(f"{k}={v}\n" for k, v in CANARIES.items()), encoding="utf-8")
    return path


RUNBOOK_TABLE = """\
SECRET                 LOCATION                       STATUS  DETAIL
ALPACA_API_KEY_ID      staging/alpaca/api_key_id      OK
ALPACA_API_SECRET_KEY  staging/alpaca/api_secret_key  OK
DATABASE_PASSWORD      staging/database/password      OK
REDIS_PASSWORD         staging/redis/password         OK

SERVICE              POLICY                                    STATUS  DETAIL
signal-service       staging-signal-service-secrets-read       OK      reads exactly its 2 secret(s)
execution-gateway    staging-execution-gateway-secrets-read    OK      reads exactly its 4 secret(s)
orchestrator         staging-orchestrator-secrets-read         OK      reads exactly its 2 secret(s)
market-data-service  staging-market-data-service-secrets-read  OK      reads exactly its 3 secret(s)
risk-manager         staging-risk-manager-secrets-read         OK      reads exactly its 2 secret(s)
(namespace)          staging-secrets-read                      OK      reads exactly its 4 secret(s)

✓ verify OK: 4/4 secrets OK; 6/6 policies OK (aws, namespace staging)
"""


def test_the_runbooks_table_is_all_ok(deployed: Server, env_file: Path) -> None:
    table = verify(aws_env(deployed), "--env-file", str(env_file))
    assert table.code == 0, table.output
    assert table.stdout == RUNBOOK_TABLE
    secrets, policies = rows(verify(aws_env(deployed), "--env-file", str(env_file), "--json"))
    assert secrets == dict.fromkeys(MANIFEST.secrets, "OK")
    assert policies == dict.fromkeys(ALL_ROWS, "OK")


# --- drift: each case changes one thing, checks the verdict, and puts it back --------------------------


@contextmanager
def policy_changed(moto: Server, name: str, change: Callable[[dict[str, Any]], None]) -> Iterator[None]:
    """A new default version of policy `name`, edited by `change`; the old default comes back after."""
    iam = client(moto, "iam")
    arn = policy_arn(name)
    current = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    document = copy.deepcopy(iam.get_policy_version(PolicyArn=arn, VersionId=current)["PolicyVersion"]["Document"])
    change(document)
    new = iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(document), SetAsDefault=True)
    try:
        yield
    finally:
        iam.set_default_policy_version(PolicyArn=arn, VersionId=current)
        iam.delete_policy_version(PolicyArn=arn, VersionId=new["PolicyVersion"]["VersionId"])


def statement_added(statement: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    return lambda document: document["Statement"].append(statement)


def read_statement_changed(**changes: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        read = next(s for s in document["Statement"] if s.get("Sid") == "ReadTaggedSecrets")
        read.update(changes)

    return change


@contextmanager
def tag_changed(moto: Server, secret: str, add: dict[str, str], remove: list[str]) -> Iterator[None]:
    sm = client(moto, "secretsmanager")
    before = {t["Key"]: t["Value"] for t in sm.describe_secret(SecretId=secret).get("Tags", [])}
    if add:
        sm.tag_resource(SecretId=secret, Tags=[{"Key": k, "Value": v} for k, v in add.items()])
    if remove:
        sm.untag_resource(SecretId=secret, TagKeys=remove)
    try:
        yield
    finally:
        sm.untag_resource(SecretId=secret, TagKeys=list(add))
        sm.tag_resource(SecretId=secret, Tags=[{"Key": k, "Value": v} for k, v in before.items()])


@contextmanager
def stray_secret(moto: Server, name: str, tags: dict[str, str]) -> Iterator[None]:
    sm = client(moto, "secretsmanager")
    sm.create_secret(Name=name, SecretString=DRIFTED, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    try:
        yield
    finally:
        sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)


SVC_POLICY = naming.aws_service_policy("staging", SVC)
PROD_PATTERN = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:prod/*"
GET = "secretsmanager:GetSecretValue"
READ_TAG = f"read-{SVC}"
# (label, the drift, the service whose row must change, its status, a phrase of its detail)
Drift = Callable[[Server], AbstractContextManager[None]]


def _index(document: dict[str, Any], sid: str) -> int:
    return next(i for i, statement in enumerate(document["Statement"]) if statement.get("Sid") == sid)


DRIFTS: list[tuple[str, Drift, str, str, str]] = [
    (
        "extra-statement-prod",
        lambda m: policy_changed(
            m, SVC_POLICY, statement_added({"Effect": "Allow", "Action": GET, "Resource": PROD_PATTERN})
        ),
        SVC,
        "OVER-GRANTED",
        "outside arn:aws:secretsmanager:us-east-1:123456789012:secret:staging/*",
    ),
    (
        "iam-star",
        lambda m: policy_changed(
            m, SVC_POLICY, statement_added({"Effect": "Allow", "Action": "iam:*", "Resource": "*"})
        ),
        SVC,
        "OVER-GRANTED",
        "allows iam:* beyond the read actions",
    ),
    (
        "not-action",
        lambda m: policy_changed(
            m, SVC_POLICY, statement_added({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})
        ),
        SVC,
        "OVER-GRANTED",
        "uses NotAction",
    ),
    (
        "not-resource",
        lambda m: policy_changed(
            m, SVC_POLICY, statement_added({"Effect": "Allow", "Action": GET, "NotResource": PROD_PATTERN})
        ),
        SVC,
        "OVER-GRANTED",
        "uses NotResource",
    ),
    (
        "unknown-condition",
        lambda m: policy_changed(
            m, SVC_POLICY, read_statement_changed(Condition={"StringLike": {f"aws:ResourceTag/{READ_TAG}": "*"}})
        ),
        SVC,
        "OVER-GRANTED",
        "StringLike",
    ),
    (
        "condition-dropped",
        lambda m: policy_changed(m, SVC_POLICY, lambda d: d["Statement"][0].pop("Condition")),
        SVC,
        "OVER-GRANTED",
        "without the read-signal-service tag condition",
    ),
    (
        "tagging-allowed",
        lambda m: policy_changed(m, SVC_POLICY, lambda d: d["Statement"].pop(_index(d, "NoTagChanges"))),
        SVC,
        "OVER-GRANTED",
        "does not deny secretsmanager:TagResource",
    ),
    (
        "deny-with-unknown-condition",
        lambda m: policy_changed(
            m,
            SVC_POLICY,
            statement_added(
                {
                    "Effect": "Deny",
                    "Action": GET,
                    "Resource": "*",
                    "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
                }
            ),
        ),
        SVC,
        "OVER-GRANTED",
        "a Deny whose condition cannot be evaluated",
    ),
    (
        "namespace-policy-to-star",
        lambda m: policy_changed(
            m, naming.aws_namespace_policy("staging"), lambda d: d["Statement"][0].update(Resource="*")
        ),
        "(namespace)",
        "OVER-GRANTED",
        "outside",
    ),
    (
        "extra-tag-on-another-services-secret",
        lambda m: tag_changed(m, "staging/alpaca/api_key_id", {READ_TAG: "true"}, []),
        SVC,
        "OVER-GRANTED",
        "can also read ALPACA_API_KEY_ID",
    ),
    (
        "stray-secret-tagged-for-it",
        lambda m: stray_secret(m, "staging/not/in/manifest", {READ_TAG: "true"}),
        SVC,
        "OVER-GRANTED",
        "can also read staging/not/in/manifest (not in the manifest)",
    ),
    (
        "tag-removed",
        lambda m: tag_changed(m, "staging/redis/password", {}, [READ_TAG]),
        SVC,
        "DENIED",
        "cannot read REDIS_PASSWORD",
    ),
    (
        "tag-value-changed",
        lambda m: tag_changed(m, "staging/database/password", {READ_TAG: "false"}, []),
        SVC,
        "DENIED",
        "cannot read DATABASE_PASSWORD",
    ),
]


@pytest.mark.parametrize(("label", "drift", "service", "status", "phrase"), DRIFTS, ids=[d[0] for d in DRIFTS])
def test_drift_is_caught(deployed: Server, label: str, drift: Drift, service: str, status: str, phrase: str) -> None:
    with drift(deployed):
        outcome = verify(aws_env(deployed), "--json")
    assert outcome.code == 1, label
    _, policies = rows(outcome)
    assert policies == {**dict.fromkeys(ALL_ROWS, "OK"), service: status}
    assert phrase in details(outcome)[service]
    assert verify(aws_env(deployed)).code == 0  # the drift is undone


def test_value_changed_behind_its_back_is_a_mismatch(deployed: Server, env_file: Path) -> None:
    sm = client(deployed, "secretsmanager")
    sm.put_secret_value(SecretId="staging/alpaca/api_key_id", SecretString=DRIFTED)
    try:
        outcome = verify(aws_env(deployed), "--env-file", str(env_file), "--json")
    finally:
        sm.put_secret_value(SecretId="staging/alpaca/api_key_id", SecretString=CANARIES["ALPACA_API_KEY_ID"])
    assert outcome.code == 1
    secrets, _ = rows(outcome)
    assert secrets == {**dict.fromkeys(MANIFEST.secrets, "OK"), "ALPACA_API_KEY_ID": "MISMATCH"}


def test_aws_region_alone_is_honoured(deployed: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 9, item 4: the installed botocore ignores AWS_REGION on its own; verify passes it explicitly,
    and prefers it over AWS_DEFAULT_REGION as the AWS CLI v2 does."""
    env = {k: v for k, v in aws_env(deployed).items() if k not in ("AWS_REGION", "AWS_DEFAULT_REGION")}
    env["AWS_CONFIG_FILE"] = "/nonexistent"
    for name in ("AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    assert boto3.session.Session().region_name is None  # botocore alone: no region
    outcome = verify({**env, "AWS_REGION": "us-east-1"})
    assert outcome.code == 0, outcome.output
    # moto keeps regions apart: in eu-west-1 there is nothing, so AWS_REGION was the one used.
    other = verify({**env, "AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-east-1"}, "--json")
    assert set(rows(other)[0].values()) == {"MISSING"}


def test_deleted_secrets_and_policies(fresh_moto: Server) -> None:
    deploy_aws(fresh_moto, values=CANARIES, envFile="")
    sm = client(fresh_moto, "secretsmanager")
    sm.delete_secret(SecretId="staging/redis/password", ForceDeleteWithoutRecovery=True)
    sm.delete_secret(SecretId="staging/database/password", RecoveryWindowInDays=7)  # scheduled, not gone yet
    client(fresh_moto, "iam").delete_policy(PolicyArn=policy_arn(naming.aws_service_policy("staging", "orchestrator")))
    outcome = verify(aws_env(fresh_moto))
    assert outcome.code == 1
    lines = outcome.stdout.splitlines()
    redis = next(x for x in lines if x.startswith("REDIS_PASSWORD"))
    assert "MISSING" in redis and "SecretNotFoundError: Secret 'staging/redis/password' not found in AWS" in redis
    assert "MISSING" in next(x for x in lines if x.startswith("DATABASE_PASSWORD"))
    assert "policy does not exist" in next(x for x in lines if x.startswith("orchestrator"))
    assert "2 MISSING" in lines[-1]


def test_unreachable_endpoint_exits_2(moto: Server) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    outcome = verify({**aws_env(moto), "AWS_ENDPOINT_URL": url})
    assert outcome.code == 2
    assert outcome.stderr.strip().splitlines() == [f"error: AWSSecretsManagerError: cannot reach AWS at {url}"]


@pytest.fixture(scope="module")
def enforcing_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A separate moto server that enforces IAM actions (moto still ignores resource ARNs)."""
    server = start_moto(tmp_path_factory.mktemp("moto-auth"))
    try:
        yield server
    finally:
        server.stop()


def user_keys(moto: Server, name: str, actions: list[str]) -> dict[str, str]:
    iam = client(moto, "iam")
    iam.create_user(UserName=name)
    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
    iam.put_user_policy(UserName=name, PolicyName="verify", PolicyDocument=json.dumps(document))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


def test_operator_permissions_batch_fallback_and_denied_reads(enforcing_moto: Server) -> None:
    """docs/verify.md's operator permissions are enough (without batch reads: one GetSecretValue each);
    without GetSecretValue or ListSecrets verify cannot check and says which call was refused."""
    deploy_aws(enforcing_moto, values=CANARIES, envFile="")
    iam_reads = ["iam:ListPolicies", "iam:GetPolicyVersion"]
    no_batch = user_keys(
        enforcing_moto, "no-batch", ["secretsmanager:GetSecretValue", "secretsmanager:ListSecrets", *iam_reads]
    )
    no_read = user_keys(enforcing_moto, "no-read", ["secretsmanager:ListSecrets", *iam_reads])
    no_list = user_keys(enforcing_moto, "no-list", ["secretsmanager:GetSecretValue", *iam_reads])
    requests.post(f"{enforcing_moto.url}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
    env = clean_env({**MOTO_ENV, "AWS_ENDPOINT_URL": enforcing_moto.url})

    # Proof that moto enforces: the batch call itself is denied for this user.
    denied = boto3.client(
        "secretsmanager",
        endpoint_url=enforcing_moto.url,
        region_name="us-east-1",
        aws_access_key_id=no_batch["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=no_batch["AWS_SECRET_ACCESS_KEY"],
    )
    with pytest.raises(denied.exceptions.ClientError, match=r"\(403\)|AccessDenied"):
        denied.batch_get_secret_value(SecretIdList=["staging/redis/password"])

    fallback = verify({**env, **no_batch}, "--json")
    assert fallback.code == 0, fallback.output
    assert set(rows(fallback)[0].values()) == {"OK"}

    refused = verify({**env, **no_read})
    assert refused.code == 2
    assert refused.stderr.strip().splitlines() == [
        "error: AWSSecretsManagerError: Access Denied (GetSecretValue on staging/alpaca/api_key_id)"
    ]
    unlisted = verify({**env, **no_list})
    assert unlisted.code == 2
    assert unlisted.stderr.strip().splitlines() == [
        "error: AWSSecretsManagerError: Access Denied (ListSecrets on staging/)"
    ]
