"""`python -m components verify`: the runbook's Validation checklist as one command.

For every manifest secret: it is present and, with `--env-file`, its value's SHA-256 equals the `.env`
value's (digests are compared in memory; no value or digest is ever printed). For every service (and
the namespace-wide policy): the read policy exists and grants read on exactly its secrets.

- Vault (`VAULT_ADDR` or `--vault-addr`, token only from `VAULT_TOKEN`): a bounded thread pool
  (`--concurrency`) reads over one keep-alive connection per worker. Each policy is checked by minting
  a short-lived child token that carries only that policy, asking `sys/capabilities` about the
  namespace's data paths (plus probes: a path in the namespace the manifest does not use, one outside
  it, the namespace's metadata), and revoking the token. Every path is asked about unless the policy's
  text is exactly what the program writes (then an even spread of them; see `check_policy`).
- AWS (boto3's usual chain, `AWS_ENDPOINT_URL`): `BatchGetSecretValue` in chunks of 20, falling back
  to `GetSecretValue` per secret when batch reads are denied; each policy's default version is
  evaluated with `components.iam_eval` against the namespace's secret ARNs (AWS's simulator is an
  online API, and real enforcement cannot be observed from one caller).

Exit codes: 0 all good, 1 any MISSING / MISMATCH / DENIED / OVER-GRANTED, 2 cannot check (one line
naming the runbook's error: `VaultConnectionError: cannot reach Vault at ...`, sealed Vault,
permission denied, bad arguments).
"""

import argparse
import hashlib
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from components import naming
from components.envfile import read_env
from components.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_OK, InputError
from components.manifest import Manifest, Secret, load

SecretStatus = Literal["OK", "MISSING", "MISMATCH"]
PolicyStatus = Literal["OK", "DENIED", "OVER-GRANTED"]

NAMESPACE_ROW = "(namespace)"
"""The service column of the namespace-wide read policy's row."""
AWS_BATCH_SIZE = 20
"""BatchGetSecretValue accepts at most 20 ids per call."""
CHILD_TOKEN_TTL = "2m"
"""Long enough for one sys/capabilities call; revoked right after anyway."""
CAPABILITIES_CHUNK = 200
"""Paths per sys/capabilities call (OpenBao refuses JSON bodies with more than ~1,000 strings)."""
SPOT_CHECKS = 16
"""Paths checked per group (its own secrets, the others) for a policy whose text is the program's."""
VAULT_WRITE_CAPABILITIES = frozenset({"create", "update", "patch", "delete", "sudo", "root"})
AWS_GET = "secretsmanager:GetSecretValue"
AWS_WRITE_ACTIONS = (
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecret",
    "secretsmanager:DeleteSecret",
)
PROBE = "verify-probe-not-in-manifest"
"""A secret name no manifest uses, to see whether a policy reaches past the manifest's secrets."""

T = TypeVar("T")


class CannotCheck(InputError):
    """The backend cannot be checked (unreachable, sealed, permission denied): exit 2, one line."""


@dataclass(frozen=True)
class SecretResult:
    key: str
    location: str
    """Where it lives: `secret/staging/alpaca/api_key_id` (as `vault kv get` takes it) or the AWS name."""
    status: SecretStatus
    detail: str = ""


@dataclass(frozen=True)
class PolicyResult:
    service: str
    policy: str
    status: PolicyStatus
    detail: str = ""


@dataclass(frozen=True)
class Report:
    backend: str
    namespace: str
    secrets: list[SecretResult]
    policies: list[PolicyResult]

    @property
    def ok(self) -> bool:
        statuses = [r.status for r in self.secrets] + [r.status for r in self.policies]
        return all(s == "OK" for s in statuses)


@dataclass(frozen=True)
class Fetched:
    """One secret as read back: absent, or the SHA-256 of its value (the value itself is dropped)."""

    digest: str | None = None
    problem: str = ""
    """Why it counts as MISSING (or MISMATCH when a digest is absent but the secret exists)."""
    exists: bool = True
    arn: str = ""


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def secret_status(secret: Secret, location: str, fetched: Fetched, expected: dict[str, str] | None) -> SecretResult:
    """Compare what was read with the `.env` digests (if any); never name the value."""
    if not fetched.exists:
        return SecretResult(secret.key, location, "MISSING", fetched.problem)
    if fetched.digest is None:
        return SecretResult(secret.key, location, "MISMATCH", fetched.problem)
    if expected is not None and expected[secret.key] != fetched.digest:
        return SecretResult(secret.key, location, "MISMATCH", "value differs from the .env (SHA-256)")
    return SecretResult(secret.key, location, "OK")


def policy_status(
    service: str,
    policy: str,
    should_read: set[str],
    can_read: set[str],
    can_write: set[str],
    beyond: list[str],
) -> PolicyResult:
    """Judge one policy: DENIED when it misses one of its secrets, OVER-GRANTED when it reaches more."""
    missing = sorted(should_read - can_read)
    if missing:
        return PolicyResult(service, policy, "DENIED", "cannot read " + ", ".join(missing))
    extra = sorted(can_read - should_read)
    problems = []
    if extra:
        problems.append("can also read " + ", ".join(extra))
    if can_write:
        problems.append("can write " + ", ".join(sorted(can_write)))
    if beyond:
        problems.append("reaches " + ", ".join(beyond))
    if problems:
        return PolicyResult(service, policy, "OVER-GRANTED", "; ".join(problems))
    return PolicyResult(service, policy, "OK", f"reads exactly its {len(should_read)} secret(s)")


def missing_policy(service: str, policy: str, own: list[Secret]) -> PolicyResult:
    """A service that reads nothing gets no policy (backends refuse an empty one); anyone else needs it."""
    if own:
        return PolicyResult(service, policy, "DENIED", "policy does not exist")
    return PolicyResult(service, policy, "OK", "reads no secrets; no policy")


def gather(futures: list[Future[T]]) -> list[T]:
    """Results in order; on the first exception the not-yet-started work is cancelled and it re-raises."""
    try:
        return [f.result() for f in futures]
    except BaseException:
        for f in futures:
            f.cancel()
        raise


# --- Vault ------------------------------------------------------------------------------------------


def vault_tls_verify() -> bool | str:
    """TLS verification as the Vault CLI reads it: VAULT_SKIP_VERIFY, else VAULT_CACERT / VAULT_CAPATH."""
    if os.environ.get("VAULT_SKIP_VERIFY", "").lower() in ("1", "true", "yes"):
        return False
    return os.environ.get("VAULT_CACERT") or os.environ.get("VAULT_CAPATH") or True


class VaultChecker:
    """Control calls (health, policies, tokens, capabilities) through hvac; the bulk reads through a
    urllib3 pool of one keep-alive connection per worker. Profiling showed requests spending ~0.3 ms of
    CPU per call, half of the client's time on loopback, where the client shares two cores with Vault."""

    def __init__(self, addr: str, token: str, mount: str, namespace: str, workers: int) -> None:
        import certifi
        import hvac
        import requests
        import urllib3

        self.addr = addr.rstrip("/")
        self.mount = mount.strip("/")
        self.namespace = namespace
        self.workers = workers
        verify = vault_tls_verify()
        proxy = requests.utils.get_environ_proxies(self.addr).get(self.addr.split(":", 1)[0])
        self.session = requests.Session()
        self.client = hvac.Client(url=self.addr, token=token, session=self.session, timeout=30, verify=verify)
        tls: dict[str, Any] = {}
        if self.addr.startswith("https:"):
            if verify is False:
                tls = {"cert_reqs": "CERT_NONE"}
            elif isinstance(verify, str) and os.path.isdir(verify):
                tls = {"cert_reqs": "CERT_REQUIRED", "ca_cert_dir": verify}
            else:
                tls = {"cert_reqs": "CERT_REQUIRED", "ca_certs": verify if isinstance(verify, str) else certifi.where()}
        pool_args: dict[str, Any] = {
            "maxsize": workers,
            "timeout": urllib3.Timeout(connect=10, read=30),
            "retries": urllib3.Retry(total=2, redirect=False, status=0, raise_on_status=False),
            **tls,
        }
        self.reads = urllib3.ProxyManager(proxy, **pool_args) if proxy else urllib3.PoolManager(**pool_args)
        self.read_headers = {"X-Vault-Token": token, "X-Vault-Request": "true"}

    def data_path(self, secret: Secret) -> str:
        """The API path a read goes to (and policies name)."""
        return naming.vault_data_path(self.mount, self.namespace, secret.path)

    def kv_path(self, secret: Secret) -> str:
        """The path as `vault kv get` takes it: `secret/staging/alpaca/api_key_id`."""
        return f"{self.mount}/{naming.secret_name(self.namespace, secret.path)}"

    def preflight(self) -> None:
        """Reachable, initialised, unsealed, and VAULT_TOKEN valid; otherwise CannotCheck."""
        import hvac
        import requests

        try:
            health = self.session.get(f"{self.addr}/v1/sys/health", timeout=10)
        except requests.Timeout:
            raise CannotCheck(f"VaultConnectionError: Timeout connecting to Vault at {self.addr}") from None
        except requests.RequestException:
            raise CannotCheck(f"VaultConnectionError: cannot reach Vault at {self.addr}") from None
        if health.status_code == 503:
            raise CannotCheck(f"VaultConnectionError: Vault at {self.addr} is sealed (unseal it first)")
        if health.status_code == 501:
            raise CannotCheck(f"VaultConnectionError: Vault at {self.addr} is not initialised")
        try:
            self.client.auth.token.lookup_self()
        except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized):
            raise CannotCheck(f"permission denied: VAULT_TOKEN is not a valid token at {self.addr}") from None
        except requests.RequestException:
            raise CannotCheck(f"VaultConnectionError: cannot reach Vault at {self.addr}") from None

    def fetch(self, secret: Secret) -> Fetched:
        import urllib3

        path = self.data_path(secret)
        try:
            response = self.reads.request("GET", f"{self.addr}/v1/{path}", headers=self.read_headers)
        except urllib3.exceptions.HTTPError:
            raise CannotCheck(f"VaultConnectionError: cannot reach Vault at {self.addr}") from None
        if response.status == 404:  # never written, deleted, or its latest version soft-deleted
            name = naming.secret_name(self.namespace, secret.path)
            return Fetched(exists=False, problem=f"SecretNotFoundError: Secret '{name}' not found in Vault")
        if response.status == 403:
            raise CannotCheck(
                f"permission denied: VAULT_TOKEN cannot read {path} "
                f"(give it the {naming.vault_namespace_policy(self.namespace)} policy)"
            )
        if response.status != 200:
            raise CannotCheck(f"VaultError: HTTP {response.status} reading {path}")
        data = (json.loads(response.data).get("data") or {}).get("data") or {}
        value = data.get("value")
        if not isinstance(value, str):
            return Fetched(problem="no string field `value` (write it as value=...)")
        return Fetched(digest=digest(value))

    def fetch_many(self, secrets: list[Secret]) -> list[Fetched]:
        return [self.fetch(s) for s in secrets]

    def policy_text(self, policy: str) -> str | None:
        """The policy's HCL as stored, or None when there is no such policy."""
        import hvac

        try:
            return str(self.client.sys.read_acl_policy(policy)["data"]["policy"])
        except hvac.exceptions.InvalidPath:
            return None
        except hvac.exceptions.Forbidden:
            raise CannotCheck(f"permission denied: VAULT_TOKEN cannot read the policy {policy}") from None

    def program_text(self, service: str, own: list[Secret]) -> str | None:
        """The HCL the program writes for this policy (components.policies), None when it writes none."""
        from components.policies import vault_namespace_policy_hcl, vault_service_policy_hcl

        if service == NAMESPACE_ROW:
            return vault_namespace_policy_hcl(self.mount, self.namespace)
        return vault_service_policy_hcl(self.mount, self.namespace, [s.path for s in own]) if own else None

    def capabilities(self, policy: str, paths: list[str]) -> dict[str, set[str]]:
        """Capabilities on `paths` of a fresh short-lived token carrying only `policy` (revoked after)."""
        import hvac

        try:
            created = self.client.auth.token.create(
                policies=[policy], no_default_policy=True, ttl=CHILD_TOKEN_TTL, display_name="verify"
            )
        except hvac.exceptions.Forbidden:
            raise CannotCheck("permission denied: VAULT_TOKEN cannot create a test token") from None
        except hvac.exceptions.InvalidRequest:  # Vault: child policies must be a subset of the parent's
            raise CannotCheck(
                f"permission denied: VAULT_TOKEN cannot create a token carrying {policy} "
                "(it needs sudo on auth/token/create)"
            ) from None
        child = created["auth"]["client_token"]
        found: dict[str, set[str]] = {}
        try:
            # Vault refuses a request body with too many strings ("high complexity"): ask in chunks.
            for i in range(0, len(paths), CAPABILITIES_CHUNK):
                chunk = paths[i : i + CAPABILITIES_CHUNK]
                answer = self.client.sys.get_capabilities(paths=chunk, token=child)
                found.update({p: set(answer.get(p) or answer.get("data", {}).get(p, [])) for p in chunk})
        except hvac.exceptions.Forbidden:
            raise CannotCheck("permission denied: VAULT_TOKEN cannot use sys/capabilities") from None
        finally:
            self.client.auth.token.revoke(child)
        return found

    def check_policy(self, job: tuple[str, str, list[Secret], list[Secret]]) -> PolicyResult:
        service, policy, own, everything = job
        text = self.policy_text(policy)
        if text is None:
            return missing_policy(service, policy, own)
        # Vault evaluates sys/capabilities path by path against the whole policy, so checking every path
        # costs secrets x rules: seconds at 1,000 secrets. A policy whose text is exactly what the program
        # writes grants exactly what the live tests prove that text grants; spot-check it on the server.
        # Any other text (edited by hand, stale) gets every path checked.
        as_written = text == self.program_text(service, own)
        own_keys = {s.key for s in own}
        others = [s for s in everything if s.key not in own_keys]
        checked = spot_sample(own) + spot_sample(others) if as_written else everything
        by_path = {self.data_path(s): s.key for s in checked}
        inside = f"{self.mount}/data/{self.namespace}/{PROBE}"
        outside = f"{self.mount}/data/{PROBE}/{self.namespace}"
        metadata = f"{self.mount}/metadata/{self.namespace}/"
        caps = self.capabilities(policy, [*by_path, inside, outside, metadata])
        namespace_wide = service == NAMESPACE_ROW
        can_read = {key for path, key in by_path.items() if "read" in caps[path]}
        can_write = {key for path, key in by_path.items() if caps[path] & VAULT_WRITE_CAPABILITIES}
        beyond = [outside] if caps[outside] - {"deny"} else []
        if not namespace_wide and caps[inside] - {"deny"}:
            beyond.append(inside)
        if caps[inside] & VAULT_WRITE_CAPABILITIES:
            beyond.append(inside + " (write)")
        if namespace_wide and "list" not in caps[metadata]:
            return PolicyResult(service, policy, "DENIED", f"cannot list {metadata}")
        if not namespace_wide and caps[metadata] - {"deny"}:
            beyond.append(metadata)
        should_read = own_keys & set(by_path.values())
        result = policy_status(service, policy, should_read, can_read, can_write, beyond)
        if result.status == "OK" and len(checked) < len(everything):
            detail = (
                f"reads exactly its {len(own)} secret(s) "
                f"(text as the program writes it; {len(checked)} of {len(everything)} paths checked)"
            )
            return PolicyResult(service, policy, "OK", detail)
        return result


def spot_sample(secrets: list[Secret]) -> list[Secret]:
    """Up to SPOT_CHECKS secrets spread evenly over the list (all of them when it is short)."""
    step = max(1, -(-len(secrets) // SPOT_CHECKS))
    return secrets[::step]


def check_vault(args: argparse.Namespace, manifest: Manifest, expected: dict[str, str] | None) -> Report:
    addr = args.vault_addr or os.environ.get("VAULT_ADDR", "")
    if not addr:
        raise CannotCheck("VaultConnectionError: no Vault address (set VAULT_ADDR or pass --vault-addr)")
    token = os.environ.get("VAULT_TOKEN", "")
    if not token:
        raise CannotCheck("permission denied: VAULT_TOKEN is not set (verify never takes a token as an argument)")
    checker = VaultChecker(addr, token, args.vault_mount, args.namespace, args.concurrency)
    try:
        return vault_report(checker, manifest, expected)
    except CannotCheck:
        raise
    except Exception as e:  # hvac/requests errors carry request details, never values; name only the kind
        raise CannotCheck(f"VaultError: {e.__class__.__name__} talking to Vault at {checker.addr}") from None


def vault_report(checker: VaultChecker, manifest: Manifest, expected: dict[str, str] | None) -> Report:
    checker.preflight()
    secrets = [s for _, s in sorted(manifest.secrets.items())]
    jobs = [
        (svc, naming.vault_service_policy(checker.namespace, svc), manifest.readers_of(svc), secrets)
        for svc in manifest.services
    ]
    jobs.append((NAMESPACE_ROW, naming.vault_namespace_policy(checker.namespace), secrets, secrets))
    with ThreadPoolExecutor(max_workers=checker.workers) as pool:
        # Policies first: each is several round trips, so they finish alongside the reads.
        policy_futures = [pool.submit(checker.check_policy, job) for job in jobs]
        # One task per worker, each reading its own slice: a future per secret costs more than the read.
        slices = [secrets[i :: checker.workers] for i in range(checker.workers)]
        done = gather([pool.submit(checker.fetch_many, part) for part in slices])
        by_key = {
            s.key: f for part, results in zip(slices, done, strict=True) for s, f in zip(part, results, strict=True)
        }
        fetched = [by_key[s.key] for s in secrets]
        policies = gather(policy_futures)
    rows = [secret_status(s, checker.kv_path(s), f, expected) for s, f in zip(secrets, fetched, strict=True)]
    return Report("vault", checker.namespace, rows, policies)


# --- AWS --------------------------------------------------------------------------------------------


def access_denied(error: Any) -> bool:
    """A botocore ClientError that is an authorisation refusal (AWS's code, or a bare 403 from emulators)."""
    code = error.response.get("Error", {}).get("Code", "")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("AccessDeniedException", "AccessDenied") or (status == 403 and not code.isalpha())


class AwsChecker:
    def __init__(self, namespace: str, workers: int) -> None:
        import boto3
        from botocore.config import Config

        session = boto3.session.Session()
        if not session.region_name:
            raise CannotCheck("AWSSecretsManagerError: no AWS region (set AWS_REGION or AWS_DEFAULT_REGION)")
        config = Config(
            max_pool_connections=workers,
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=10,
            read_timeout=30,
        )
        self.namespace = namespace
        self.workers = workers
        self.sm = session.client("secretsmanager", config=config)
        self.iam = session.client("iam", config=config)
        self.endpoint = str(self.sm.meta.endpoint_url)
        self.batch_denied = False

    def call(self, what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        """One AWS call; connection and credential failures become CannotCheck naming the call."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
        )

        try:
            return fn(**kwargs)
        except EndpointConnectionError:
            raise CannotCheck(f"AWSSecretsManagerError: cannot reach AWS at {self.endpoint}") from None
        except NoCredentialsError:
            raise CannotCheck("AWSSecretsManagerError: no AWS credentials (boto3's usual chain found none)") from None
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if access_denied(e) and what != "BatchGetSecretValue":
                raise CannotCheck(f"AWSSecretsManagerError: Access Denied ({what})") from None
            if code in ("UnrecognizedClientException", "InvalidClientTokenId", "ExpiredTokenException"):
                raise CannotCheck(f"AWSSecretsManagerError: AWS rejected the credentials ({code})") from None
            raise
        except BotoCoreError as e:
            raise CannotCheck(f"AWSSecretsManagerError: {e.__class__.__name__} calling {what}") from None

    def name(self, secret: Secret) -> str:
        return naming.secret_name(self.namespace, secret.path)

    def fetch_one(self, secret: Secret) -> Fetched:
        from botocore.exceptions import ClientError

        name = self.name(secret)
        try:
            found = self.call(f"GetSecretValue on {name}", self.sm.get_secret_value, SecretId=name)
        except ClientError as e:
            return self.absent(name, e.response.get("Error", {}).get("Code", ""))
        return self.present(found)

    def absent(self, name: str, code: str) -> Fetched:
        if code == "ResourceNotFoundException":
            return Fetched(exists=False, problem=f"SecretNotFoundError: Secret '{name}' not found in AWS")
        if code == "InvalidRequestException":  # AWS's answer for a secret scheduled for deletion
            return Fetched(exists=False, problem=f"SecretNotFoundError: Secret '{name}' is scheduled for deletion")
        raise CannotCheck(f"AWSSecretsManagerError: {code} (GetSecretValue on {name})")

    @staticmethod
    def present(found: dict[str, Any]) -> Fetched:
        value = found.get("SecretString")
        if not isinstance(value, str):
            return Fetched(problem="no SecretString (binary secret?)", arn=found.get("ARN", ""))
        return Fetched(digest=digest(value), arn=found["ARN"])

    def fetch_chunk(self, chunk: list[Secret]) -> list[Fetched]:
        """BatchGetSecretValue for up to 20 secrets; per-secret GetSecretValue once batch is denied."""
        from botocore.exceptions import ClientError

        if not self.batch_denied:
            names = [self.name(s) for s in chunk]
            try:
                found, errors = self.batch(names)
            except ClientError as e:
                if not access_denied(e):
                    raise CannotCheck(
                        f"AWSSecretsManagerError: {e.response['Error']['Code']} (BatchGetSecretValue)"
                    ) from None
                self.batch_denied = True  # a policy scoped to secret ARNs cannot grant batch reads
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

    def policies(self) -> dict[str, tuple[str, str]]:
        """Customer-managed policy name -> (ARN, default version id)."""
        out: dict[str, tuple[str, str]] = {}
        kwargs: dict[str, Any] = {"Scope": "Local"}
        while True:
            page = self.call("iam:ListPolicies", self.iam.list_policies, **kwargs)
            for p in page.get("Policies", []):
                out[p["PolicyName"]] = (p["Arn"], p["DefaultVersionId"])
            if not page.get("IsTruncated"):
                return out
            kwargs["Marker"] = page["Marker"]

    def document(self, arn: str, version: str) -> Any:
        answer = self.call("iam:GetPolicyVersion", self.iam.get_policy_version, PolicyArn=arn, VersionId=version)
        return answer["PolicyVersion"]["Document"]


def check_aws_policy(
    service: str, policy: str, document: Any, own: list[Secret], arns: dict[str, str], probes: list[str]
) -> PolicyResult:
    from components import iam_eval

    try:
        compiled = iam_eval.Policy(document)
    except iam_eval.PolicyDocumentError as e:
        return PolicyResult(service, policy, "DENIED", f"policy document not understood: {e}")
    can_read = {key for key, arn in arns.items() if compiled.allows(AWS_GET, arn)}
    can_write = {key for key, arn in arns.items() for action in AWS_WRITE_ACTIONS if compiled.allows(action, arn)}
    beyond = [p for p in probes if compiled.allows(AWS_GET, p)]
    should = {s.key for s in own if s.key in arns}
    return policy_status(service, policy, should, can_read, can_write, beyond)


def check_aws(args: argparse.Namespace, manifest: Manifest, expected: dict[str, str] | None) -> Report:
    checker = AwsChecker(args.namespace, args.concurrency)
    try:
        return aws_report(checker, manifest, expected)
    except CannotCheck:
        raise
    except Exception as e:  # botocore errors name the call and code, never a value; keep only the kind
        code = getattr(e, "response", {}).get("Error", {}).get("Code", "")
        raise CannotCheck(f"AWSSecretsManagerError: {e.__class__.__name__} {code}".rstrip()) from None


def aws_report(checker: AwsChecker, manifest: Manifest, expected: dict[str, str] | None) -> Report:
    secrets = [s for _, s in sorted(manifest.secrets.items())]
    chunks = [secrets[i : i + AWS_BATCH_SIZE] for i in range(0, len(secrets), AWS_BATCH_SIZE)]
    with ThreadPoolExecutor(max_workers=checker.workers) as pool:
        existing = pool.submit(checker.policies)
        fetched = [f for chunk in gather([pool.submit(checker.fetch_chunk, c) for c in chunks]) for f in chunk]
        by_name = existing.result()
    rows = [secret_status(s, checker.name(s), f, expected) for s, f in zip(secrets, fetched, strict=True)]
    arns = {s.key: f.arn for s, f in zip(secrets, fetched, strict=True) if f.arn}
    # Probe ARNs next to a real one: a name in the namespace the manifest does not use, and one outside it.
    probes: list[str] = []
    if arns:
        prefix = next(iter(arns.values())).split(":secret:")[0] + ":secret:"
        probes = [f"{prefix}{checker.namespace}/{PROBE}-AbCdEf", f"{prefix}{PROBE}/{checker.namespace}-AbCdEf"]
    jobs = [
        (svc, naming.aws_service_policy(checker.namespace, svc), manifest.readers_of(svc), probes)
        for svc in manifest.services
    ]
    jobs.append((NAMESPACE_ROW, naming.aws_namespace_policy(checker.namespace), secrets, probes[1:]))
    policies: list[PolicyResult] = []
    for service, policy, own, service_probes in jobs:
        if policy not in by_name:
            policies.append(missing_policy(service, policy, own))
            continue
        document = checker.document(*by_name[policy])
        policies.append(check_aws_policy(service, policy, document, own, arns, service_probes))
    return Report("aws", checker.namespace, rows, policies)


# --- output and entry point ---------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [headers, *rows]]
    return "\n".join(lines)


def summary(report: Report) -> str:
    def counts(statuses: list[str], ok_word: str) -> str:
        bad = {s: statuses.count(s) for s in dict.fromkeys(statuses) if s != "OK"}
        text = f"{statuses.count('OK')}/{len(statuses)} {ok_word} OK"
        return text + "".join(f", {n} {s}" for s, n in bad.items())

    secrets = counts([r.status for r in report.secrets], "secrets")
    policies = counts([r.status for r in report.policies], "policies")
    mark, verdict = ("✓", "OK") if report.ok else ("✗", "FAILED")
    return f"{mark} verify {verdict}: {secrets}; {policies} ({report.backend}, namespace {report.namespace})"


def render(report: Report) -> str:
    secrets = table(
        ["SECRET", "LOCATION", "STATUS", "DETAIL"], [[r.key, r.location, r.status, r.detail] for r in report.secrets]
    )
    policies = table(
        ["SERVICE", "POLICY", "STATUS", "DETAIL"],
        [[r.service, r.policy, r.status, r.detail] for r in report.policies],
    )
    return f"{secrets}\n\n{policies}\n\n{summary(report)}"


def as_json(report: Report) -> str:
    return json.dumps(
        {
            "ok": report.ok,
            "backend": report.backend,
            "namespace": report.namespace,
            "secrets": [asdict(r) for r in report.secrets],
            "policies": [asdict(r) for r in report.policies],
            "summary": summary(report),
        },
        indent=2,
        ensure_ascii=False,
    )


def expected_digests(env_file: Path | None, manifest: Manifest) -> dict[str, str] | None:
    if env_file is None:
        return None
    entries = read_env(env_file)
    absent = sorted(set(manifest.secrets) - set(entries))
    if absent:
        raise InputError(f"{env_file}: manifest secrets not in this file: {', '.join(absent)}")
    return {key: digest(entries[key].value) for key in manifest.secrets}


def check(args: argparse.Namespace) -> Report:
    """Validate the arguments, then run the backend's checks (raises InputError / CannotCheck)."""
    problem = naming.name_problem("namespace", args.namespace)
    if problem:
        raise InputError(f"--namespace: {problem}")
    if args.concurrency < 1:
        raise InputError("--concurrency must be at least 1")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*/?", args.vault_mount):
        raise InputError("--vault-mount must be a mount path such as secret")
    manifest = load(args.manifest)
    expected = expected_digests(args.env_file, manifest)
    return (check_vault if args.backend == "vault" else check_aws)(args, manifest, expected)


def run(args: argparse.Namespace) -> int:
    try:
        report = check(args)
    except InputError as e:  # CannotCheck included: one line, exit 2 (and a JSON verdict for CI)
        if args.json:
            print(json.dumps({"ok": False, "error": str(e)}))
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(as_json(report) if args.json else render(report))
    return EXIT_OK if report.ok else EXIT_CHECK_FAILED
