"""`components run --backend aws` against a live moto server.

The staging stack is deployed by the real program through the lifecycle engine (secrets with the example
.env's values and their `read-<service>` tags, versions, policies); the other namespaces, made to fail or
to be large, are written the same way with `run_helpers.provision_aws`. Every run goes through a proxy
that records each call, so what `run` asks for is observed on the wire.

What moto can and cannot prove (moto 5.2, checked in its source and by these tests):
- IAM enforcement (`POST /moto-api/reset-auth` with `0`) checks the ACTION of each call against the
  caller's policies with `Resource: "*"`; it evaluates neither resource ARNs nor conditions, and it does
  not authorize the secrets of a `BatchGetSecretValue` one by one. So a policy as the program writes it
  gets its batch reads (statement on `"*"`) and is refused GetSecretValue (scoped to `<ns>/*`), and moto
  would hand it any secret it asked for. Least privilege on AWS is therefore shown by what `run` asks for
  (exactly the service's secrets, on the wire) and by `verify`'s offline evaluation of the policy
  (components/iam_eval.py); AWS's per-secret refusals inside a batch (`Errors` with
  AccessDeniedException) are handled by `run` but cannot be produced by moto.
- What it does enforce is enough for the refusal story: an identity without any read action gets
  `AWSSecretsManagerError: Access Denied (GetSecretValue on <name>)` for each secret, exit 2.
"""

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from components.envfile import read_env
from components.layout import layout
from components.manifest import dump, from_data, load
from components.policies import iam_service_read_policy, secret_arn_pattern
from tests.conftest import EXAMPLE_ENV, REPO
from tests.live.conftest import unique_namespace
from tests.live.run_helpers import PROBE, RecordingProxy, probe_output, provision_aws, run_components, sha256
from tests.live.servers import HOST, Server, free_port, reset_moto

MANIFEST = load(REPO / "secrets.manifest.yaml")
ENTRIES = read_env(EXAMPLE_ENV)
VALUES = {key: entry.value for key, entry in ENTRIES.items()}
SECRET_VALUES = [VALUES[key] for key in MANIFEST.secrets]
STAGING = layout(MANIFEST, "aws", "staging")
BATCH = "secretsmanager.BatchGetSecretValue"
KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def host_env(endpoint: str, **extra: str) -> dict[str, str]:
    """A service host: its role's credentials and AWS_REGION only (no AWS_DEFAULT_REGION, no profile);
    instance metadata off so nothing but 127.0.0.1 is ever asked."""
    return {
        "PATH": os.environ["PATH"],
        "LANG": "C.UTF-8",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        "AWS_EC2_METADATA_DISABLED": "true",
        **extra,
    }


class Done:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code, self.stdout, self.stderr = code, stdout, stderr

    @property
    def errors(self) -> list[str]:
        return [line.removeprefix("error: ") for line in self.stderr.splitlines() if line.startswith("error:")]


def run(env: dict[str, str], service: str, namespace: str, *command: str, manifest: Path | None = None) -> Done:
    argv = ["run", "--service", service, "--backend", "aws", "--namespace", namespace, "--env-file", str(EXAMPLE_ENV)]
    if manifest:
        argv += ["--manifest", str(manifest)]
    done = run_components(env, *argv, "--", *command) if command else run_components(env, *argv, "--check")
    for value in SECRET_VALUES:
        assert value not in done.stdout
        assert value not in done.stderr
    return Done(done.returncode, done.stdout, done.stderr)


def client(url: str, service: str, **keys: str) -> Any:
    return boto3.client(
        service, endpoint_url=url, region_name="us-east-1", **{k.lower(): v for k, v in (keys or KEYS).items()}
    )


@pytest.fixture(scope="module")
def staging(moto: Server) -> Server:
    """The staging stack deployed on AWS by the real program through the lifecycle engine."""
    from components.engine import Engine

    reset_moto(moto.url)
    config = {"backend": "aws", "aws:region": "us-east-1", "envFile": str(EXAMPLE_ENV), "awsRecoveryWindowInDays": 7}
    Engine(aws_endpoint=moto.url).up("staging", config)
    return moto


@pytest.fixture
def proxy(staging: Server) -> Iterator[RecordingProxy]:
    with RecordingProxy(staging.url).running() as recorder:
        yield recorder


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[list[str]]:
    path = tmp_path / "started"
    yield [sys.executable, "-c", f"open({str(path)!r}, 'w').close()"]
    assert not path.exists(), "COMMAND was started"


@pytest.mark.parametrize("service", list(MANIFEST.services))
def test_each_service_gets_exactly_its_secrets_in_one_batch(proxy: RecordingProxy, service: str) -> None:
    env = host_env(proxy.url, **KEYS)
    done = run(env, service, "staging", sys.executable, "-c", PROBE)
    assert done.code == 0, done.stderr
    own = STAGING.readable_by(service)
    expected = {k: sha256(v) for k, v in env.items()}
    expected.update({s.key: sha256(VALUES[s.key]) for s in own})
    expected.update({k: sha256(VALUES[k]) for k in MANIFEST.config})
    assert probe_output(done.stdout) == expected
    assert done.stderr.splitlines() == [
        "Initialized AWSSecretsManager (namespace=staging)",
        *(f"Loaded secret: {s.name}" for s in own),
    ]
    assert [r.target for r in proxy.requests] == [BATCH]
    assert sorted(proxy.requests[0].body["SecretIdList"]) == sorted(s.name for s in own)


def test_batches_of_twenty(moto: Server, tmp_path: Path) -> None:
    """45 secrets: three BatchGetSecretValue calls of at most 20 names, no GetSecretValue."""
    namespace = unique_namespace()
    keys = [f"BULK_{i:02d}_TOKEN" for i in range(45)]
    manifest = tmp_path / "bulk.manifest.yaml"
    manifest.write_text(dump(from_data({"version": 1, "services": ["bulk-service"], "secrets": dict.fromkeys(keys)})))
    plan = layout(load(manifest), "aws", namespace)
    provision_aws(client(moto.url, "secretsmanager"), plan, {k: f"CANARY-bulk-{i}" for i, k in enumerate(keys)})
    with RecordingProxy(moto.url).running() as proxy:
        done = run(host_env(proxy.url, **KEYS), "bulk-service", namespace, manifest=manifest)
    assert done.code == 0, done.stderr
    assert "CANARY-bulk" not in done.stdout + done.stderr
    assert [r.target for r in proxy.requests] == [BATCH] * 3
    asked = [r.body["SecretIdList"] for r in proxy.requests]
    assert sorted(len(names) for names in asked) == [5, 20, 20]
    assert sorted(n for names in asked for n in names) == sorted(s.name for s in plan.secrets)


def test_missing_and_deleted_secrets_one_line_each(moto: Server, marker: list[str]) -> None:
    namespace = unique_namespace()
    plan = layout(MANIFEST, "aws", namespace)
    sm = client(moto.url, "secretsmanager")
    provision_aws(sm, plan, VALUES)
    sm.delete_secret(SecretId=f"{namespace}/alpaca/api_key_id", ForceDeleteWithoutRecovery=True)
    sm.delete_secret(SecretId=f"{namespace}/alpaca/api_secret_key", RecoveryWindowInDays=7)
    done = run(host_env(moto.url, **KEYS), "market-data-service", namespace, *marker)
    assert done.code == 2
    assert done.errors == [
        f"SecretNotFoundError: Secret '{namespace}/alpaca/api_key_id' not found in AWS Secrets Manager",
        f"SecretNotFoundError: Secret '{namespace}/alpaca/api_secret_key' is scheduled for deletion in "
        "AWS Secrets Manager",
    ]


@pytest.fixture
def enforced(staging: Server) -> Iterator[dict[str, dict[str, str]]]:
    """IAM enforcement on for one test (restored after): a user holding the program's read policy for
    execution-gateway, and one allowed only to list."""
    iam = client(staging.url, "iam")
    sm = client(staging.url, "secretsmanager")
    arn = sm.describe_secret(SecretId=STAGING.secret("DATABASE_PASSWORD").name)["ARN"]
    documents = {
        "gateway": iam_service_read_policy(secret_arn_pattern(arn, "staging"), "execution-gateway"),
        "lister": {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "secretsmanager:ListSecrets", "Resource": "*"}],
        },
    }
    keys = {}
    for name, document in documents.items():
        user = f"run-test-{name}-{unique_namespace()}"
        iam.create_user(UserName=user)
        policy = iam.create_policy(PolicyName=user, PolicyDocument=json.dumps(document))["Policy"]["Arn"]
        iam.attach_user_policy(UserName=user, PolicyArn=policy)
        key = iam.create_access_key(UserName=user)["AccessKey"]
        keys[name] = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
    requests.post(f"{staging.url}/moto-api/reset-auth", data="0", timeout=10).raise_for_status()
    try:
        yield keys
    finally:
        requests.post(f"{staging.url}/moto-api/reset-auth", data="inf", timeout=10).raise_for_status()


def test_access_denied(staging: Server, enforced: dict[str, dict[str, str]], marker: list[str]) -> None:
    done = run(host_env(staging.url, **enforced["lister"]), "execution-gateway", "staging", *marker)
    assert done.code == 2
    assert done.errors == [
        f"AWSSecretsManagerError: Access Denied (GetSecretValue on {s.name})"
        for s in STAGING.readable_by("execution-gateway")
    ]


def test_the_program_policy_reads_through_batch_under_enforcement(
    staging: Server, enforced: dict[str, dict[str, str]]
) -> None:
    """moto refuses this policy's GetSecretValue (it checks Resource "*" against `<ns>/*`): the run
    succeeding shows every read went through BatchGetSecretValue."""
    done = run(host_env(staging.url, **enforced["gateway"]), "execution-gateway", "staging")
    assert done.code == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("✓ execution-gateway would start with 4 secrets")


def test_unknown_credentials_under_enforcement(
    staging: Server, enforced: dict[str, dict[str, str]], marker: list[str]
) -> None:
    keys = {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "not-a-key"}
    done = run(host_env(staging.url, **keys), "orchestrator", "staging", *marker)
    assert done.code == 2
    assert done.errors == ["AWSSecretsManagerError: AWS rejected the credentials (InvalidClientTokenId)"]


@pytest.mark.parametrize(
    ("label", "env", "expected"),
    [
        (
            "no region",
            {"AWS_REGION": ""},
            "AWSSecretsManagerError: no AWS region (set AWS_REGION or AWS_DEFAULT_REGION)",
        ),
        ("no credentials", {}, "AWSSecretsManagerError: no AWS credentials "),
    ],
)
def test_no_usable_identity(staging: Server, marker: list[str], label: str, env: dict[str, str], expected: str) -> None:
    done = run({**host_env(staging.url), **env}, "orchestrator", "staging", *marker)
    assert done.code == 2, label
    assert len(done.errors) == 1 and done.errors[0].startswith(expected), done.stderr


def test_cannot_reach(marker: list[str]) -> None:
    endpoint = f"http://{HOST}:{free_port()}"
    done = run(host_env(endpoint, **KEYS), "orchestrator", "staging", *marker)
    assert done.code == 2
    assert done.errors == [f"AWSSecretsManagerError: cannot reach AWS Secrets Manager at {endpoint}"]
