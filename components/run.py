"""`python -m components run`: start a service with exactly its secrets in its environment (runbook Phase 4).

    python -m components run --service signal-service --backend vault --namespace staging \\
        --env-file /etc/trader/config.env -- python -m apps.signal_service.main

1. Log in as the service. Vault: its AppRole `<ns>-<service>` from `VAULT_ROLE_ID` + `VAULT_SECRET_ID_FILE`
   (or `VAULT_SECRET_ID`), or an existing `VAULT_TOKEN`. AWS: boto3's chain (the service's role).
   A secret is never taken from the command line.
2. Read `layout(...).readable_by(service)`, nothing else: Vault over a few keep-alive connections in
   parallel, AWS with `BatchGetSecretValue` (20 secrets a call).
3. Build COMMAND's environment: this process's, minus the Vault login material and any secret of the
   manifest the service does not read, plus each of its secrets under its `.env` key name, plus the
   manifest's config keys from `--env-file` (a variable already set wins, as with dotenv and docker).
4. Replace this process with COMMAND (`exec`): same PID, so signals and the exit code are COMMAND's own.

Any failure before the exec: one line per problem, the runbook's error name first
(`SecretNotFoundError`, `VaultConnectionError`, `AWSSecretsManagerError`, ...), exit 2, COMMAND never
started. What is printed names keys and paths, never a value. `--check` stops before the exec and prints
where each variable would come from: the health check before restarting a service.

Every start of a service pays this command's start-up, so Vault is spoken to with the standard library's
`http.client`: urllib3 would add ~25 ms of imports to every start, hvac (with requests) more
(bench/run_check.py, docs/run.md "Speed").
"""

import argparse
import json
import os
import re
import stat
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from components import naming
from components.envfile import EnvEntry, read_env
from components.environ import aws_region, proxy_for, vault_tls_verify
from components.errors import EXIT_BAD_INPUT, EXIT_OK, InputError
from components.layout import Layout, SecretSpot, layout
from components.manifest import load

if TYPE_CHECKING:
    import http.client
    import ssl

LOCAL_NAMESPACE = "local"
ENV_OVERRIDE = "SECRET_ALLOW_ENV_IN_NON_LOCAL"
"""The runbook's emergency override: secrets from the `.env` outside `local`."""
LOGIN_VARIABLES = ("VAULT_TOKEN", "VAULT_ROLE_ID", "VAULT_SECRET_ID", "VAULT_SECRET_ID_FILE")
"""Never passed to COMMAND: the service gets its secrets, not the means to read them again."""
WORKERS = 16
"""Parallel requests, one keep-alive connection each: 100 Vault reads behind a 10 ms round trip in ~70 ms."""
AWS_BATCH_SIZE = 20
"""BatchGetSecretValue takes at most 20 secret ids."""
MANAGERS = {"vault": "VaultSecretManager", "aws": "AWSSecretsManager", "env": "EnvSecretManager"}
"""The runbook's names, as a service logs them: `Initialized VaultSecretManager (namespace=staging)`."""

T = TypeVar("T")


class RunError(InputError):
    """COMMAND is not started: each line is one problem, printed as `error: <line>`; exit 2."""

    def __init__(self, *lines: str) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


class SecretUnreadable(RunError):
    """One secret could not be read (not found, denied, not a string); the others are still tried."""


class Deadline:
    """One time budget for the whole login and read."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        """Seconds left; TimeoutError once there are none."""
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return left


def gather(futures: Sequence["Future[T]"]) -> list[T]:
    """Results in order. Per-secret problems are collected (every one is reported); any other error
    cancels what has not started and is raised at once."""
    results: list[T] = []
    problems: list[str] = []
    try:
        for future in futures:
            try:
                results.append(future.result())
            except SecretUnreadable as e:
                problems.extend(e.lines)
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    if problems:
        raise RunError(*problems)
    return results


# --- Vault ------------------------------------------------------------------------------------------


def _tls_context() -> "ssl.SSLContext":
    """TLS as the Vault CLI configures it: VAULT_CACERT / VAULT_CAPATH, or VAULT_SKIP_VERIFY."""
    import ssl

    verify = vault_tls_verify()
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if verify is True:
        return ssl.create_default_context()
    if os.path.isdir(verify):
        return ssl.create_default_context(capath=verify)
    return ssl.create_default_context(cafile=verify)


class Vault:
    """The calls `run` makes to Vault (AppRole login, KV v2 reads, sys/health after a 503), over
    `http.client` with one keep-alive connection per thread."""

    def __init__(self, addr: str, deadline: Deadline) -> None:
        url = urlsplit(addr)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise RunError("VaultConnectionError: VAULT_ADDR must be an http:// or https:// URL")
        self.addr = addr.rstrip("/")
        self.https = url.scheme == "https"
        self.host = url.hostname
        self.port = url.port or (443 if self.https else 80)
        self.base = url.path.rstrip("/")
        self.deadline = deadline
        self.tls = _tls_context() if self.https else None
        self.proxy = proxy_for(self.addr)
        self.local = threading.local()

    def _connect(self) -> "http.client.HTTPConnection":
        import http.client

        host, port = self.host, self.port
        if self.proxy:
            proxy = urlsplit(self.proxy if "//" in self.proxy else f"http://{self.proxy}")
            host, port = proxy.hostname or "", proxy.port or 80
        if self.https:
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(host, port, context=self.tls)
            if self.proxy:
                connection.set_tunnel(self.host, self.port)
            return connection
        return http.client.HTTPConnection(host, port)

    def _target(self, path: str) -> str:
        target = f"{self.base}/v1/{path}"
        # Through a plain-HTTP proxy the request line carries the whole URL.
        return f"http://{self.host}:{self.port}{target}" if self.proxy and not self.https else target

    def call(
        self, method: str, path: str, token: str = "", body: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """(HTTP status, the JSON answer). Connection trouble, the deadline and an answer that is not
        Vault's JSON raise RunError."""
        import http.client

        headers = {"X-Vault-Request": "true"}
        if token:
            headers["X-Vault-Token"] = token
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            connection: http.client.HTTPConnection | None = getattr(self.local, "connection", None)
            reused = connection is not None
            if connection is None:
                connection = self.local.connection = self._connect()
            try:
                timeout = self.deadline.left()
                connection.timeout = timeout
                if connection.sock is not None:
                    connection.sock.settimeout(timeout)
                connection.request(method, self._target(path), body=data, headers=headers)
                response = connection.getresponse()
                raw = response.read()
            except TimeoutError:
                raise RunError(f"VaultConnectionError: Timeout connecting to Vault at {self.addr}") from None
            except (http.client.HTTPException, OSError) as e:
                connection.close()
                self.local.connection = None
                if reused and attempt == 1:  # a keep-alive connection the server had closed: once more
                    continue
                if self.tls is not None and e.__class__.__module__ == "ssl":
                    raise RunError(
                        f"VaultConnectionError: TLS with Vault at {self.addr} failed ({e.__class__.__name__}; "
                        "VAULT_CACERT / VAULT_CAPATH name the CA)"
                    ) from None
                raise RunError(f"VaultConnectionError: cannot reach Vault at {self.addr}") from None
            return response.status, self._parse(raw, response.status, path)
        raise AssertionError("unreachable")

    def _parse(self, raw: bytes, status: int, path: str) -> dict[str, Any]:
        """Vault answers every request with a JSON object, except 204 (no content)."""
        if status == 204 and not raw:
            return {}
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise RunError(
                f"VaultConnectionError: {self.addr} is not a Vault server "
                f"(HTTP {status} without Vault's JSON on {path})"
            )
        return answer

    def unavailable(self, path: str) -> RunError:
        """Why Vault answered 503, from sys/health: sealed, not initialised, or just unavailable."""
        status, _ = self.call("GET", "sys/health")
        if status == 503:
            return RunError(f"VaultConnectionError: Vault at {self.addr} is sealed (unseal it first)")
        if status == 501:
            return RunError(f"VaultConnectionError: Vault at {self.addr} is not initialised")
        return RunError(f"VaultConnectionError: Vault at {self.addr} is unavailable (HTTP 503 on {path})")

    def unexpected(self, status: int, path: str) -> RunError:
        if status == 503:
            return self.unavailable(path)
        return RunError(f"VaultError: HTTP {status} from Vault at {self.addr} on {path}")

    def login(self, mount: str, role_id: str, secret_id: str, role: str) -> str:
        """An AppRole login; the token's role must be `role` (credentials meant for another service, or
        for another namespace, are refused before they read anything)."""
        path = f"auth/{mount}/login"
        status, answer = self.call("POST", path, body={"role_id": role_id, "secret_id": secret_id})
        if status in (400, 403):
            raise RunError(
                f"VaultPermissionError: AppRole login refused at {path} (role_id or secret_id invalid or expired, "
                f"or no AppRole auth at auth/{mount}: see --approle-mount)"
            )
        if status != 200:
            raise self.unexpected(status, path)
        auth = answer.get("auth")
        token = auth.get("client_token") if isinstance(auth, dict) else None
        if not isinstance(auth, dict) or not isinstance(token, str) or not token:
            raise RunError(f"VaultConnectionError: {self.addr} is not a Vault server (no token from {path})")
        logged_in_as = (auth.get("metadata") or {}).get("role_name")
        if logged_in_as != role:
            raise RunError(
                f"VaultPermissionError: VAULT_ROLE_ID / secret_id log in as AppRole {logged_in_as!r}, "
                f"not {role!r} (this service's role in this namespace)"
            )
        return token

    def read(self, spot: SecretSpot, token: str) -> str:
        status, answer = self.call("GET", spot.read_path, token)
        if status == 404:  # never written, deleted, or its latest version soft-deleted
            raise SecretUnreadable(f"SecretNotFoundError: Secret '{spot.name}' not found in Vault")
        if status == 403:
            raise SecretUnreadable(
                f"VaultPermissionError: Permission denied (read on {spot.read_path}): the token's policies do not "
                "grant it (is the service in the secret's readers, and was `pulumi up` run since?)"
            )
        if status != 200:
            raise self.unexpected(status, spot.read_path)
        data = (answer.get("data") or {}).get("data") or {}
        value = data.get("value") if isinstance(data, dict) else None
        if not isinstance(value, str):
            raise SecretUnreadable(f"VaultError: Secret '{spot.name}' has no string field `value` (write value=...)")
        return value


def vault_token(vault: Vault, plan: Layout, service: str, approle_mount: str) -> str:
    """The service's token: an AppRole login when VAULT_ROLE_ID is set, else VAULT_TOKEN."""
    role_id = os.environ.get("VAULT_ROLE_ID", "")
    if role_id:
        role = naming.approle_role(plan.namespace, service)
        return vault.login(approle_mount, role_id, secret_id_from_environment(), role)
    token = os.environ.get("VAULT_TOKEN", "")
    if token:
        return token
    raise RunError(
        "VaultPermissionError: no Vault login: set VAULT_ROLE_ID and VAULT_SECRET_ID_FILE (the service's AppRole), "
        "or VAULT_TOKEN"
    )


def secret_id_from_environment() -> str:
    """The secret_id from the file VAULT_SECRET_ID_FILE names (as delivered to the host), else VAULT_SECRET_ID."""
    file = os.environ.get("VAULT_SECRET_ID_FILE", "")
    if not file:
        secret_id = os.environ.get("VAULT_SECRET_ID", "")
        if not secret_id:
            raise RunError(
                "VaultPermissionError: VAULT_ROLE_ID is set but neither VAULT_SECRET_ID_FILE nor VAULT_SECRET_ID"
            )
        return secret_id
    try:
        with open(file, encoding="utf-8") as f:
            mode = os.fstat(f.fileno()).st_mode
            secret_id = f.read().strip()
    except (OSError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or e.__class__.__name__
        raise RunError(f"VaultPermissionError: cannot read VAULT_SECRET_ID_FILE {file} ({reason})") from None
    if not secret_id:
        raise RunError(f"VaultPermissionError: VAULT_SECRET_ID_FILE {file} is empty")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log(
            f"warning: VAULT_SECRET_ID_FILE {file} is open to other users (mode {stat.S_IMODE(mode):04o}); make it 0400"
        )
    return secret_id


def read_vault(plan: Layout, service: str, wanted: list[SecretSpot], approle_mount: str, timeout: float) -> list[str]:
    addr = os.environ.get("VAULT_ADDR", "")
    if not addr:
        raise RunError("VaultConnectionError: no Vault address (set VAULT_ADDR)")
    vault = Vault(addr, Deadline(timeout))
    token = vault_token(vault, plan, service, approle_mount)
    # The AppRole token stays valid for its short TTL (vaultAppRoleTokenTtl) but is held by no process
    # after the exec: a token without the `default` policy may not revoke itself.
    with ThreadPoolExecutor(max_workers=min(WORKERS, len(wanted))) as pool:
        return gather([pool.submit(vault.read, spot, token) for spot in wanted])


# --- AWS --------------------------------------------------------------------------------------------


DENIED_CODES = ("AccessDeniedException", "AccessDenied")


def error_code(error: Any) -> str:
    """A botocore ClientError's code. moto answers IAM refusals of this JSON API in XML, which botocore
    reports as code "403" with the XML as message: the code is then read from the XML."""
    details = error.response.get("Error", {})
    code = str(details.get("Code", ""))
    if code.isdigit():
        found = re.search(r"<Code>(\w+)</Code>", str(details.get("Message", "")))
        code = found.group(1) if found else code
    return code


class Aws:
    """Secrets Manager through boto3's credential chain: the service's own role, nothing else."""

    def __init__(self, timeout: float) -> None:
        import boto3
        from botocore.config import Config

        session = boto3.session.Session(region_name=aws_region())
        if not session.region_name:
            raise RunError("AWSSecretsManagerError: no AWS region (set AWS_REGION or AWS_DEFAULT_REGION)")
        attempts = 3
        per_try = max(timeout / attempts, 1.0)
        config = Config(
            connect_timeout=per_try,
            read_timeout=per_try,
            retries={"max_attempts": attempts, "mode": "standard"},
            max_pool_connections=WORKERS,
        )
        self.client = session.client("secretsmanager", config=config)
        self.endpoint = str(self.client.meta.endpoint_url)
        self.deadline = Deadline(timeout)

    def call(self, what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        """One call; everything but a ClientError becomes a one-line RunError naming the call."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            ReadTimeoutError,
        )

        try:
            self.deadline.left()
            return fn(**kwargs)
        except (TimeoutError, ConnectTimeoutError, ReadTimeoutError):
            raise RunError(
                f"AWSSecretsManagerError: Timeout connecting to AWS Secrets Manager at {self.endpoint}"
            ) from None
        except EndpointConnectionError:
            raise RunError(f"AWSSecretsManagerError: cannot reach AWS Secrets Manager at {self.endpoint}") from None
        except NoCredentialsError:
            raise RunError(
                "AWSSecretsManagerError: no AWS credentials "
                "(boto3's chain found none: environment, profile, task role, instance profile)"
            ) from None
        except ClientError as e:
            code = error_code(e)
            if code in ("UnrecognizedClientException", "InvalidClientTokenId", "ExpiredTokenException"):
                raise RunError(f"AWSSecretsManagerError: AWS rejected the credentials ({code})") from None
            raise
        except BotoCoreError as e:
            raise RunError(f"AWSSecretsManagerError: {e.__class__.__name__} ({what})") from None

    @staticmethod
    def problem(name: str, code: str) -> SecretUnreadable:
        if code == "ResourceNotFoundException":
            return SecretUnreadable(f"SecretNotFoundError: Secret '{name}' not found in AWS Secrets Manager")
        if code == "InvalidRequestException":  # AWS's answer for a secret scheduled for deletion
            return SecretUnreadable(
                f"SecretNotFoundError: Secret '{name}' is scheduled for deletion in AWS Secrets Manager"
            )
        if code in DENIED_CODES:
            return SecretUnreadable(f"AWSSecretsManagerError: Access Denied (GetSecretValue on {name})")
        return SecretUnreadable(f"AWSSecretsManagerError: {code or 'error'} (GetSecretValue on {name})")

    @staticmethod
    def string(name: str, found: Mapping[str, Any]) -> str:
        value = found.get("SecretString")
        if not isinstance(value, str):
            raise SecretUnreadable(f"AWSSecretsManagerError: Secret '{name}' has no SecretString (binary secret?)")
        return value

    def get_one(self, name: str) -> str:
        from botocore.exceptions import ClientError

        try:
            found = self.call(f"GetSecretValue on {name}", self.client.get_secret_value, SecretId=name)
        except ClientError as e:
            raise self.problem(name, error_code(e)) from None
        return self.string(name, found)

    def get_batch(self, names: list[str]) -> list[str]:
        """Up to 20 secrets in one call; AWS authorizes each against GetSecretValue and reports the ones
        it refuses or cannot find in `Errors`. Where BatchGetSecretValue itself is denied (a role with an
        older policy), each secret is read on its own, so a refusal names the secret."""
        from botocore.exceptions import ClientError

        found: dict[str, Mapping[str, Any]] = {}
        errors: dict[str, str] = {}
        kwargs: dict[str, Any] = {"SecretIdList": names}
        try:
            while True:
                page = self.call("BatchGetSecretValue", self.client.batch_get_secret_value, **kwargs)
                found.update({item["Name"]: item for item in page.get("SecretValues", [])})
                errors.update({e.get("SecretId", ""): e.get("ErrorCode", "") for e in page.get("Errors", [])})
                if not page.get("NextToken"):
                    break
                kwargs["NextToken"] = page["NextToken"]
        except ClientError as e:
            code = error_code(e)
            if code not in DENIED_CODES:
                raise RunError(f"AWSSecretsManagerError: {code} (BatchGetSecretValue)") from None
            return each(names, self.get_one)

        def pick(name: str) -> str:
            if name not in found:
                raise self.problem(name, errors.get(name, "ResourceNotFoundException"))
            return self.string(name, found[name])

        return each(names, pick)


def each(names: list[str], read: Callable[[str], str]) -> list[str]:
    """`read` of every name in order; every unreadable one is reported, not only the first."""
    values: list[str] = []
    problems: list[str] = []
    for name in names:
        try:
            values.append(read(name))
        except SecretUnreadable as e:
            problems.extend(e.lines)
    if problems:
        raise SecretUnreadable(*problems)
    return values


def read_aws(wanted: list[SecretSpot], timeout: float) -> list[str]:
    aws = Aws(timeout)
    names = [spot.name for spot in wanted]
    chunks = [names[i : i + AWS_BATCH_SIZE] for i in range(0, len(names), AWS_BATCH_SIZE)]
    with ThreadPoolExecutor(max_workers=min(WORKERS, len(chunks))) as pool:
        return [value for chunk in gather([pool.submit(aws.get_batch, c) for c in chunks]) for value in chunk]


# --- the .env (local, or the emergency override) -------------------------------------------------------


def read_env_secrets(wanted: list[SecretSpot], entries: Mapping[str, EnvEntry], env_file: Path) -> list[str]:
    missing = [s for s in wanted if s.key not in entries]
    if missing:
        raise RunError(
            *(
                f"SecretNotFoundError: Secret '{s.name}' not found in .env ({s.key} is not in {env_file})"
                for s in missing
            )
        )
    return [entries[s.key].value for s in wanted]


def env_backend_refusal(namespace: str) -> str | None:
    """The runbook's rule: `.env` secrets are for `local`; elsewhere only with the emergency override."""
    if namespace == LOCAL_NAMESPACE or os.environ.get(ENV_OVERRIDE) == "1":
        return None
    return (
        f"EnvSecretManager refused in namespace {namespace}: the .env is for {LOCAL_NAMESPACE} only; "
        f"{ENV_OVERRIDE}=1 is the emergency override (runbook: Rollback)"
    )


# --- COMMAND's environment ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ChildEnvironment:
    env: dict[str, str]
    sources: list[tuple[str, str]]
    """(variable, where it comes from) for every variable `run` sets, keeps or removes: names only."""


def child_environment(
    inherited: Mapping[str, str],
    plan: Layout,
    service: str,
    secrets: Mapping[str, tuple[str, str]],
    entries: Mapping[str, EnvEntry],
    config_keys: Sequence[str],
    env_file: Path | None,
) -> ChildEnvironment:
    """This process's environment, minus the login material and the secrets the service does not read,
    plus its `secrets` (env key -> (value, where it was read)) and the manifest's config keys found in
    the `.env`."""
    env = dict(inherited)
    sources: list[tuple[str, str]] = []
    for key, (value, where) in secrets.items():
        env[key] = value
        sources.append((key, f"secret from {where}"))
    for key in config_keys:
        if key not in entries:
            continue
        if key in inherited:
            sources.append((key, f"config, kept from the environment (not {env_file}:{entries[key].line})"))
        else:
            env[key] = entries[key].value
            sources.append((key, f"config from {env_file}:{entries[key].line}"))
    for spot in plan.secrets:
        if spot.key not in secrets and env.pop(spot.key, None) is not None:
            sources.append((spot.key, f"removed: a secret {service} does not read"))
    for name in LOGIN_VARIABLES:
        if env.pop(name, None) is not None:
            sources.append((name, "removed: Vault login material (the service never holds it)"))
    known = {*config_keys, *(s.key for s in plan.secrets)}
    for key in entries:
        if key not in known:
            sources.append((key, f"not set: in {env_file} but not in the manifest (see `components check`)"))
    return ChildEnvironment(env, sources)


# --- the command -------------------------------------------------------------------------------------------


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def validate(args: argparse.Namespace) -> list[str]:
    """COMMAND (without the `--` that ends run's own options); usage problems raise InputError."""
    for kind, value in (("namespace", args.namespace), ("service", args.service)):
        problem = naming.name_problem(kind, value)
        if problem:
            raise InputError(f"--{kind}: {problem}")
    if args.timeout <= 0:
        raise InputError("--timeout must be a positive number of seconds")
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command and not args.check:
        raise InputError("no COMMAND to start: `run ... -- COMMAND [ARGS...]` (or --check)")
    if args.backend == "env" and args.env_file is None:
        raise InputError("--backend env needs --env-file (the .env the secrets come from)")
    return command


def run(args: argparse.Namespace) -> int:
    try:
        return start(args)
    except RunError as e:
        for line in e.lines:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_BAD_INPUT


def start(args: argparse.Namespace) -> int:
    command = validate(args)
    backend: str = args.backend
    if backend == "env":
        refusal = env_backend_refusal(args.namespace)
        if refusal:
            raise RunError(refusal)
    manifest = load(args.manifest)
    if args.service not in manifest.services:
        raise InputError(f"--service {args.service}: not a service of {args.manifest}")
    # `.env` secrets have no backend name of their own: they are logged under the same `<ns>/<path>`.
    plan = layout(manifest, "aws" if backend == "aws" else "vault", args.namespace, args.vault_mount)
    wanted = plan.readable_by(args.service)
    if not wanted:
        raise InputError(f"--service {args.service}: reads no secret in {args.manifest}; start it without `run`")
    entries = read_env(args.env_file) if args.env_file is not None else {}

    log(f"Initialized {MANAGERS[backend]} (namespace={args.namespace})")
    if backend == "vault":
        values = read_vault(plan, args.service, wanted, args.approle_mount, args.timeout)
        where = {s.key: f"{plan.store} {s.location}" for s in wanted}
    elif backend == "aws":
        values = read_aws(wanted, args.timeout)
        where = {s.key: f"{plan.store} {s.location}" for s in wanted}
    else:
        if args.namespace != LOCAL_NAMESPACE:
            log(f"warning: {ENV_OVERRIDE}=1: secrets from {args.env_file} in namespace {args.namespace}")
        values = read_env_secrets(wanted, entries, args.env_file)
        where = {s.key: f"{args.env_file}:{entries[s.key].line}" for s in wanted}
    for spot in wanted:
        log(f"Loaded secret: {spot.name}")

    child = child_environment(
        os.environ,
        plan,
        args.service,
        {s.key: (value, where[s.key]) for s, value in zip(wanted, values, strict=True)},
        entries,
        manifest.config,
        args.env_file,
    )
    if args.check:
        width = max(len(name) for name, _ in child.sources)
        for name, source in child.sources:
            print(f"{name.ljust(width)}  {source}")
        config = sum(1 for _, source in child.sources if source.startswith("config"))
        store = args.env_file if backend == "env" else plan.store
        print(f"✓ {args.service} would start with {len(wanted)} secrets ({store}) and {config} config keys")
        return EXIT_OK
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(command[0], command, child.env)
    except OSError as e:
        raise RunError(f"cannot start {command[0]}: {e.strerror}") from None
