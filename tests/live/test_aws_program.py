"""The real program on a moto server: the runbook's reads return the values, tags and recovery window
are as configured, and each IAM policy lints clean (parliament, offline) and allows GetSecretValue on
exactly its service's secret ARNs (evaluated with components.iam_eval: moto does not enforce
secretsmanager resource ARNs, so its enforcement cannot prove this)."""

import datetime
import json
from typing import Any

import boto3
import parliament
import pytest

from components import iam_eval, naming
from components.envfile import read_env
from components.manifest import load
from tests.conftest import EXAMPLE_ENV, REPO
from tests.live.conftest import deploy_aws
from tests.live.servers import Server

MANIFEST = load(REPO / "secrets.manifest.yaml")
VALUES = {k: e.value for k, e in read_env(EXAMPLE_ENV).items()}
GET = "secretsmanager:GetSecretValue"


def client(moto: Server, service: str) -> Any:
    return boto3.client(
        service, endpoint_url=moto.url, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )


@pytest.fixture
def deployed(fresh_moto: Server) -> Server:
    """Two namespaces in one account: staging (under test) and prod (must stay out of staging's policies)."""
    client(fresh_moto, "iam").create_role(
        RoleName="signal-service-role",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )
    deploy_aws(fresh_moto, awsServiceRoles={"signal-service": "signal-service-role"})
    deploy_aws(fresh_moto, "prod", awsRecoveryWindowInDays=30, protect=False)
    return fresh_moto


def arns_by_key(moto: Server, namespace: str) -> dict[str, str]:
    sm = client(moto, "secretsmanager")
    return {
        key: sm.describe_secret(SecretId=naming.secret_name(namespace, s.path))["ARN"]
        for key, s in MANIFEST.secrets.items()
    }


def tags_by_arn(moto: Server, *namespaces: str) -> dict[str, dict[str, str]]:
    """Every secret of the namespaces with its real tags (what a tag-conditioned policy is judged on)."""
    sm = client(moto, "secretsmanager")
    found: dict[str, dict[str, str]] = {}
    for namespace in namespaces:
        for key in arns_by_key(moto, namespace).values():
            described = sm.describe_secret(SecretId=key)
            found[described["ARN"]] = {t["Key"]: t["Value"] for t in described.get("Tags", [])}
    return found


def policy_document(moto: Server, name: str) -> dict[str, Any]:
    iam = client(moto, "iam")
    arn = f"arn:aws:iam::123456789012:policy/{name}"
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
    return document if isinstance(document, dict) else json.loads(document)


def test_runbook_get_secret_value_returns_each_env_value(deployed: Server) -> None:
    sm = client(deployed, "secretsmanager")
    assert sm.get_secret_value(SecretId="staging/alpaca/api_key_id")["SecretString"] == VALUES["ALPACA_API_KEY_ID"]
    for key, s in MANIFEST.secrets.items():
        assert sm.get_secret_value(SecretId=naming.secret_name("staging", s.path))["SecretString"] == VALUES[key]


def test_tags_are_as_configured(deployed: Server) -> None:
    sm = client(deployed, "secretsmanager")
    for key, s in MANIFEST.secrets.items():
        tags = {
            t["Key"]: t["Value"] for t in sm.describe_secret(SecretId=naming.secret_name("staging", s.path))["Tags"]
        }
        readers = {f"read-{service}": "true" for service in s.readers}
        assert tags == {"managed-by": "pulumi/secrets-migration", "namespace": "staging", "env-key": key, **readers}


def test_recovery_window_is_what_a_delete_uses(deployed: Server) -> None:
    """The window lives in state and is applied on delete (DeleteSecret RecoveryWindowInDays): do that delete."""
    run = deploy_aws(deployed, "rw", awsRecoveryWindowInDays=9)
    sm = client(deployed, "secretsmanager")
    for secret in run.of_type("aws:secretsmanager/secret:Secret"):
        assert secret.inputs["recoveryWindowInDays"] == 9
        deleted = sm.delete_secret(SecretId=secret.inputs["name"], RecoveryWindowInDays=9)
        left = deleted["DeletionDate"] - datetime.datetime.now(deleted["DeletionDate"].tzinfo)
        assert datetime.timedelta(days=8, hours=23) < left <= datetime.timedelta(days=9)


@pytest.mark.parametrize("service", MANIFEST.services)
def test_service_policy_reads_exactly_its_secrets_by_their_tags(deployed: Server, service: str) -> None:
    """Evaluated on the secrets as moto holds them (both namespaces, real tags): exactly its own."""
    document = policy_document(deployed, naming.aws_service_policy("staging", service))
    assert parliament.analyze_policy_string(json.dumps(document)).findings == []
    staging = arns_by_key(deployed, "staging")
    own = {staging[s.key] for s in MANIFEST.readers_of(service)}
    everything = tags_by_arn(deployed, "staging", "prod")
    assert iam_eval.allowed_resources(document, GET, everything) == own
    for arn, tags in everything.items():
        for action in ("secretsmanager:PutSecretValue", "secretsmanager:DeleteSecret", "secretsmanager:TagResource"):
            assert not iam_eval.allows(document, action, arn, tags)


def test_namespace_policy_covers_the_namespace_only(deployed: Server) -> None:
    document = policy_document(deployed, naming.aws_namespace_policy("staging"))
    assert parliament.analyze_policy_string(json.dumps(document)).findings == []
    staging, prod = arns_by_key(deployed, "staging"), arns_by_key(deployed, "prod")
    everything = set(staging.values()) | set(prod.values())
    assert iam_eval.allowed_resources(document, GET, everything) == set(staging.values())


def test_service_role_gets_its_policy_attached(deployed: Server) -> None:
    attached = client(deployed, "iam").list_attached_role_policies(RoleName="signal-service-role")["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == [naming.aws_service_policy("staging", "signal-service")]
