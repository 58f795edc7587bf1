"""`verify --backend aws`: read every secret back and judge every read policy (`aws_rules`).

Reads use `BatchGetSecretValue` in chunks of 20, falling back to `GetSecretValue` per secret when batch
reads are denied. Each policy's default version is judged statement by statement and evaluated with
`components.iam_eval` over the namespace's secrets as ListSecrets shows them, real tags included (AWS's
policy simulator is an online API, and emulators do not enforce resource ARNs or conditions).

Credentials come from boto3's usual chain; the region from the options (the CLI passes AWS_REGION or
AWS_DEFAULT_REGION explicitly: the installed botocore ignores AWS_REGION on its own), else the profile.
"""

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from components import naming
from components.layout import Layout, SecretSpot
from components.policies import secret_arn_pattern
from components.verify.aws_rules import ListedSecret, Namespace, judge_policy
from components.verify.deadline import Deadline, call, parallel
from components.verify.options import VerifyOptions
from components.verify.report import (
    NAMESPACE_ROW,
    CannotCheck,
    Fetched,
    PolicyResult,
    Report,
    digest,
    secret_result,
)

ERROR = "AWSSecretsManagerError"
BATCH_SIZE = 20
"""BatchGetSecretValue accepts at most 20 ids per call."""


def access_denied(error: Any) -> bool:
    """A botocore ClientError that is an authorisation refusal (AWS's code, or a bare 403 from emulators)."""
    code = error.response.get("Error", {}).get("Code", "")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("AccessDeniedException", "AccessDenied") or (status == 403 and not code.isalpha())


class AwsChecker:
    def __init__(self, options: VerifyOptions, deadline: Deadline) -> None:
        import boto3
        from botocore.config import Config

        session = boto3.session.Session(region_name=options.aws_region)
        if not session.region_name:
            raise CannotCheck(f"{ERROR}: no AWS region (set AWS_REGION or AWS_DEFAULT_REGION)")
        connect, read = deadline.timeouts()
        self.config = Config(
            max_pool_connections=options.concurrency,
            retries={"max_attempts": 2, "mode": "standard"},
            connect_timeout=connect,
            read_timeout=read,
        )
        self.deadline = deadline
        self.region = str(session.region_name)
        self.workers = options.concurrency
        self.sm = session.client("secretsmanager", config=self.config)
        self.endpoint = str(self.sm.meta.endpoint_url)
        deadline.address = self.endpoint
        self.batch_denied = False

    def call(self, what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        """One AWS call under the deadline; connection, credential and timeout failures become CannotCheck."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            ReadTimeoutError,
        )

        with self.deadline.doing(what):
            try:
                return fn(**kwargs)
            except (ReadTimeoutError, ConnectTimeoutError):
                raise self.deadline.timed_out(what) from None
            except EndpointConnectionError:
                raise CannotCheck(f"{ERROR}: cannot reach AWS at {self.endpoint}") from None
            except NoCredentialsError:
                raise CannotCheck(f"{ERROR}: no AWS credentials (boto3's usual chain found none)") from None
            except ClientError as e:
                code = e.response.get("Error", {}).get("Code", "")
                if access_denied(e) and what != "BatchGetSecretValue":
                    raise CannotCheck(f"{ERROR}: Access Denied ({what})") from None
                if code in ("UnrecognizedClientException", "InvalidClientTokenId", "ExpiredTokenException"):
                    raise CannotCheck(f"{ERROR}: AWS rejected the credentials ({code})") from None
                raise
            except BotoCoreError as e:
                if self.deadline.expired:
                    raise self.deadline.timed_out(what) from None
                raise CannotCheck(f"{ERROR}: {e.__class__.__name__} calling {what}") from None

    # --- values ---------------------------------------------------------------------------------------

    def fetch_one(self, spot: SecretSpot) -> Fetched:
        from botocore.exceptions import ClientError

        try:
            found = self.call(f"GetSecretValue on {spot.name}", self.sm.get_secret_value, SecretId=spot.name)
        except ClientError as e:
            return self.absent(spot.name, e.response.get("Error", {}).get("Code", ""))
        return self.present(found)

    @staticmethod
    def absent(name: str, code: str) -> Fetched:
        if code == "ResourceNotFoundException":
            return Fetched(exists=False, problem=f"SecretNotFoundError: Secret '{name}' not found in AWS")
        if code == "InvalidRequestException":  # AWS's answer for a secret scheduled for deletion
            return Fetched(exists=False, problem=f"SecretNotFoundError: Secret '{name}' is scheduled for deletion")
        raise CannotCheck(f"{ERROR}: {code} (GetSecretValue on {name})")

    @staticmethod
    def present(found: dict[str, Any]) -> Fetched:
        value = found.get("SecretString")
        if not isinstance(value, str):
            return Fetched(problem="no SecretString (binary secret?)")
        return Fetched(digest=digest(value))

    def fetch_chunk(self, chunk: Sequence[SecretSpot]) -> list[Fetched]:
        """BatchGetSecretValue for up to 20 secrets; per-secret GetSecretValue once batch is denied."""
        from botocore.exceptions import ClientError

        if not self.batch_denied:
            names = [s.name for s in chunk]
            try:
                found, errors = self.batch(names)
            except ClientError as e:
                if not access_denied(e):
                    raise CannotCheck(f"{ERROR}: {e.response['Error']['Code']} (BatchGetSecretValue)") from None
                self.batch_denied = True  # a role scoped to secret ARNs cannot be granted batch reads
            else:
                return [self.present(found[n]) if n in found else self.absent(n, errors.get(n, "")) for n in names]
        return [self.fetch_one(s) for s in chunk]

    def batch(self, names: list[str]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        found: dict[str, dict[str, Any]] = {}
        errors: dict[str, str] = {}
        kwargs: dict[str, Any] = {"SecretIdList": names}
        while True:
            page = self.call("BatchGetSecretValue", self.sm.batch_get_secret_value, **kwargs)
            for item in page.get("SecretValues", []):
                found[item["Name"]] = item
            for err in page.get("Errors", []):
                errors[err.get("SecretId", "")] = err.get("ErrorCode", "")
            if not page.get("NextToken"):
                return found, errors
            kwargs["NextToken"] = page["NextToken"]

    # --- what the namespace has, and its policies -------------------------------------------------------

    def namespace_secrets(self, prefix: str) -> list[ListedSecret]:
        """Every secret whose name starts with `prefix` (`staging/`), manifest or not, with its tags."""
        listed: list[ListedSecret] = []
        kwargs: dict[str, Any] = {"Filters": [{"Key": "name", "Values": [prefix]}]}
        while True:
            page = self.call(f"ListSecrets on {prefix}", self.sm.list_secrets, **kwargs)
            for s in page.get("SecretList", []):
                if str(s.get("Name", "")).startswith(prefix):  # AWS's name filter ignores case
                    tags = {t["Key"]: t["Value"] for t in s.get("Tags") or []}
                    listed.append(ListedSecret(s["Name"], s["ARN"], tags, s.get("KmsKeyId")))
            if not page.get("NextToken"):
                return listed
            kwargs["NextToken"] = page["NextToken"]

    def policies(self, names: list[str]) -> tuple[dict[str, Any], list[str]]:
        """({policy name: its default version's document} for those of `names` that exist, their ARNs).

        Runs alongside the reads; its IAM client (whose model takes ~0.1 s to load) is built here, from a
        session of its own (boto3 sessions are not shared between threads)."""
        import boto3

        iam = boto3.session.Session(region_name=self.region).client("iam", config=self.config)
        found: dict[str, tuple[str, str]] = {}
        kwargs: dict[str, Any] = {"Scope": "Local"}
        while True:
            page = self.call("iam:ListPolicies", iam.list_policies, **kwargs)
            found.update({p["PolicyName"]: (p["Arn"], p["DefaultVersionId"]) for p in page.get("Policies", [])})
            if not page.get("IsTruncated"):
                break
            kwargs["Marker"] = page["Marker"]
        documents = {
            name: self.call(
                f"iam:GetPolicyVersion on {name}",
                iam.get_policy_version,
                PolicyArn=found[name][0],
                VersionId=found[name][1],
            )["PolicyVersion"]["Document"]
            for name in names
            if name in found
        }
        return documents, [found[n][0] for n in documents]


def namespace_pattern(namespace: str, listed: list[ListedSecret], policy_arns: list[str], region: str) -> str:
    """`arn:...:secret:<ns>/*` as the program writes it, from a secret's ARN (the program's own way); with
    no secret left, from a policy's partition and account and the region verify talks to."""
    if listed:
        return secret_arn_pattern(listed[0].arn, namespace)
    partition, account = (policy_arns[0].split(":")[i] for i in (1, 4)) if policy_arns else ("aws", "000000000000")
    return secret_arn_pattern(f"arn:{partition}:secretsmanager:{region}:{account}:secret:x-AbCdEf", namespace)


def aws_report(options: VerifyOptions, plan: Layout, expected: dict[str, str] | None, deadline: Deadline) -> Report:
    checker = AwsChecker(options, deadline)
    prefix = naming.secret_name(plan.namespace, "")
    chunks = [plan.secrets[i : i + BATCH_SIZE] for i in range(0, len(plan.secrets), BATCH_SIZE)]
    names = {s: plan.policy_name(s) for s in [*plan.services, None]}
    tasks: list[Callable[[], Any]] = [
        partial(checker.policies, list(names.values())),
        partial(checker.namespace_secrets, prefix),
    ]
    tasks += [partial(checker.fetch_chunk, c) for c in chunks]
    (documents, policy_arns), listed, *fetched_chunks = parallel(call, tasks, checker.workers)
    fetched = [f for chunk in fetched_chunks for f in chunk]
    rows = [secret_result(s, f, expected) for s, f in zip(plan.secrets, fetched, strict=True)]
    ns = Namespace(
        plan.namespace,
        namespace_pattern(plan.namespace, listed, policy_arns, checker.region),
        tuple(listed),
        {s.name: s.key for s in plan.secrets},
    )
    policies: list[PolicyResult] = []
    for service, name in names.items():
        spot = plan.policy_of(service)
        own = [plan.secret(k) for k in spot.keys] if spot else []
        label = service or NAMESPACE_ROW
        if name not in documents:
            if own:
                policies.append(PolicyResult(label, name, "DENIED", "policy does not exist"))
            else:
                policies.append(PolicyResult(label, name, "OK", "reads no secrets; no policy"))
            continue
        found = judge_policy(documents[name], service, [s.name for s in own], ns)
        status, detail = found.verdict(f"reads exactly its {len(own)} secret(s)")
        policies.append(PolicyResult(label, name, status, detail))
    return Report("aws", plan.namespace, rows, policies)
