"""`verify --backend aws` against moto after the real program ran: all OK, drift made by hand, the batch
fallback when BatchGetSecretValue is denied, and the cases where it cannot check."""

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from components import naming
from components.manifest import load
from tests.conftest import REPO
from tests.live.conftest import Outcome, aws_env, deploy_aws, run_cli
from tests.live.servers import MOTO_ENV, Server, clean_env, free_port, start_moto

MANIFEST = load(REPO / "secrets.manifest.yaml")
CANARIES = {key: f"CANARY-aws-{key.lower()}-93be" for key in MANIFEST.secrets}
DRIFTED = "CANARY-aws-drifted-41c0"
FORBIDDEN = [*CANARIES.values(), DRIFTED]
FORBIDDEN += [hashlib.sha256(v.encode()).hexdigest() for v in list(FORBIDDEN)]
ALL_ROWS = [*MANIFEST.services, "(namespace)"]


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


@pytest.fixture
def deployed(fresh_moto: Server) -> Server:
    deploy_aws(fresh_moto, values=CANARIES, envFile="")
    return fresh_moto


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    path = tmp_path / ".env"
    path.write_text("".join(f"{k}={v}\n" for k, v in CANARIES.items()), encoding="utf-8")
    return path


def test_all_ok_after_the_program_ran(deployed: Server, env_file: Path) -> None:
    table = verify(aws_env(deployed), "--env-file", str(env_file))
    assert table.code == 0, table.output
    assert (
        table.stdout.strip().splitlines()[-1] == "✓ verify OK: 4/4 secrets OK; 6/6 policies OK (aws, namespace staging)"
    )
    secrets, policies = rows(verify(aws_env(deployed), "--env-file", str(env_file), "--json"))
    assert secrets == dict.fromkeys(MANIFEST.secrets, "OK")
    assert policies == dict.fromkeys(ALL_ROWS, "OK")


def test_value_changed_behind_its_back_is_a_mismatch(deployed: Server, env_file: Path) -> None:
    client(deployed, "secretsmanager").put_secret_value(SecretId="staging/alpaca/api_key_id", SecretString=DRIFTED)
    outcome = verify(aws_env(deployed), "--env-file", str(env_file), "--json")
    assert outcome.code == 1
    secrets, _ = rows(outcome)
    assert secrets == {**dict.fromkeys(MANIFEST.secrets, "OK"), "ALPACA_API_KEY_ID": "MISMATCH"}


def test_deleted_secrets_are_missing(deployed: Server) -> None:
    sm = client(deployed, "secretsmanager")
    sm.delete_secret(SecretId="staging/redis/password", ForceDeleteWithoutRecovery=True)
    sm.delete_secret(SecretId="staging/database/password", RecoveryWindowInDays=7)  # scheduled, not gone yet
    outcome = verify(aws_env(deployed))
    assert outcome.code == 1
    lines = outcome.stdout.splitlines()
    redis = next(x for x in lines if x.startswith("REDIS_PASSWORD"))
    assert "MISSING" in redis and "SecretNotFoundError: Secret 'staging/redis/password' not found in AWS" in redis
    assert "MISSING" in next(x for x in lines if x.startswith("DATABASE_PASSWORD"))
    assert "2 MISSING" in lines[-1]


def test_policy_widened_by_hand_is_over_granted(deployed: Server) -> None:
    iam = client(deployed, "iam")
    arn = f"arn:aws:iam::123456789012:policy/{naming.aws_service_policy('staging', 'signal-service')}"
    wide = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}],
    }
    iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(wide), SetAsDefault=True)
    outcome = verify(aws_env(deployed), "--json")
    assert outcome.code == 1
    _, policies = rows(outcome)
    assert policies == {**dict.fromkeys(ALL_ROWS, "OK"), "signal-service": "OVER-GRANTED"}
    detail = next(r["detail"] for r in json.loads(outcome.stdout)["policies"] if r["service"] == "signal-service")
    assert "can also read ALPACA_API_KEY_ID, ALPACA_API_SECRET_KEY" in detail


def test_policy_deleted_is_denied(deployed: Server) -> None:
    iam = client(deployed, "iam")
    arn = f"arn:aws:iam::123456789012:policy/{naming.aws_service_policy('staging', 'orchestrator')}"
    iam.delete_policy(PolicyArn=arn)
    _, policies = rows(verify(aws_env(deployed), "--json"))
    assert policies["orchestrator"] == "DENIED"


def test_unreachable_endpoint_exits_2(deployed: Server) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    outcome = verify({**aws_env(deployed), "AWS_ENDPOINT_URL": url})
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


def test_denied_batch_falls_back_and_denied_reads_exit_2(enforcing_moto: Server) -> None:
    deploy_aws(enforcing_moto, values=CANARIES, envFile="")
    iam_reads = ["iam:ListPolicies", "iam:GetPolicyVersion"]
    no_batch = user_keys(enforcing_moto, "no-batch", ["secretsmanager:GetSecretValue", *iam_reads])
    no_read = user_keys(enforcing_moto, "no-read", iam_reads)
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
