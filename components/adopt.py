"""`python -m components adopt`: bring secrets and policies that already exist under a stack's management.

The runbook's Phase 2 has operators create `staging/alpaca/api_key_id` by hand (`vault kv put`,
`aws secretsmanager create-secret`). A first `pulumi up` would then fail (AWS: `ResourceExistsException`)
or silently take them over (Vault). Instead:

    python -m components adopt --backend aws --namespace staging      # writes import.json
    pulumi import --stack staging --file import.json                  # the stack now owns them
    pulumi up --stack staging                                         # creates only what is missing

It looks for every secret, read policy and (Vault) AppRole role of the layout (`components.layout`), and
writes a `pulumi import --file` document with the program's exact types and logical names: the store
component itself (so the import works on a new stack; on a deployed one Pulumi skips it), then each
resource found, parented to it. Ids are what each provider imports by: Vault `SecretV2`
`<mount>/data/<name>`, policies by name, roles `auth/<mount>/role/<role>`; AWS secrets by ARN, their
current version as `<arn>|<versionId>`, IAM policies by ARN. No value is read: versions are listed, not
fetched. Mounts, auth mounts and role attachments are left out (shared, or re-created idempotently).

A secret scheduled for deletion (AWS keeps its name for the recovery window) cannot be created again
nor imported: without `--restore` the command stops with one line saying what to run; with it, it
restores the secret (`RestoreSecret`) and adopts it. This is also how a removed secret is brought back
(the revert of a removal) inside its recovery window.

Exit 0 (the file is written, or there was nothing to adopt), 2 with one line on bad input or when the
backend cannot be reached. Prints names only.
"""

import argparse
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components import naming
from components.environ import aws_region
from components.errors import EXIT_OK, InputError
from components.files import write_atomic
from components.layout import Layout, layout
from components.manifest import load

Found = tuple[str, str, str]
"""(type, logical name, import id)."""


@dataclass
class Adoption:
    plan: Layout
    found: list[Found] = field(default_factory=list)
    secrets_found: list[str] = field(default_factory=list)
    secrets_missing: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    policies_found: list[str] = field(default_factory=list)
    policies_missing: list[str] = field(default_factory=list)
    roles_found: list[str] = field(default_factory=list)


def import_file(plan: Layout, found: list[Found]) -> dict[str, Any]:
    """The `pulumi import --file` document (pkg/cmd/pulumi/operations/import.go `importFile`)."""
    store_type = naming.VAULT_STORE_TYPE if plan.backend == "vault" else naming.AWS_STORE_TYPE
    resources: list[dict[str, Any]] = [{"type": store_type, "name": naming.STORE, "component": True}]
    resources += [{"type": t, "name": n, "id": i, "parent": naming.STORE} for t, n, i in found]
    return {"nameTable": {}, "resources": resources}


# --- Vault ---------------------------------------------------------------------------------------------


def adopt_vault(plan: Layout, approle_mount: str) -> Adoption:
    import hvac
    import requests

    addr, token = os.environ.get("VAULT_ADDR", ""), os.environ.get("VAULT_TOKEN", "")
    if not addr or not token:
        raise InputError("VaultConnectionError: set VAULT_ADDR and VAULT_TOKEN")
    client = hvac.Client(url=addr, token=token, timeout=30)

    def read(path: str) -> Any:
        try:
            return client.read(path)
        except requests.RequestException:
            raise InputError(f"VaultConnectionError: cannot reach Vault at {addr}") from None
        except hvac.exceptions.Forbidden:
            raise InputError(f"permission denied: VAULT_TOKEN may not read {path}") from None

    result = Adoption(plan)
    for spot in plan.secrets:
        path = naming.vault_data_path(plan.mount, plan.namespace, spot.path)
        if read(path) is None:  # never written, or its latest version deleted
            result.secrets_missing.append(spot.location)
            continue
        result.secrets_found.append(spot.location)
        result.found.append((naming.VAULT_SECRET, spot.logical_name, f"{plan.mount}/data/{spot.name}"))
    for policy in plan.policies:
        if read(f"sys/policy/{policy.name}") is None:
            result.policies_missing.append(policy.name)
            continue
        result.policies_found.append(policy.name)
        result.found.append((naming.VAULT_POLICY, policy.logical_name, policy.name))
        if policy.service and policy.approle:
            role_path = f"auth/{approle_mount.strip('/')}/role/{policy.approle}"
            if read(role_path) is not None:
                result.roles_found.append(policy.approle)
                result.found.append((naming.VAULT_APPROLE, naming.approle_logical_name(policy.service), role_path))
    return result


# --- AWS ---------------------------------------------------------------------------------------------------


def adopt_aws(plan: Layout, restore: bool) -> Adoption:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    region = aws_region()
    if not region:
        raise InputError("AWSSecretsManagerError: no AWS region (set AWS_REGION or AWS_DEFAULT_REGION)")
    session = boto3.session.Session(region_name=region)
    sm, iam = session.client("secretsmanager"), session.client("iam")

    def call(what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except NoCredentialsError:
            raise InputError("AWSSecretsManagerError: no AWS credentials (boto3's usual chain found none)") from None
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return None
            raise InputError(f"AWSSecretsManagerError: {what} failed ({e.response['Error'].get('Code')})") from None
        except BotoCoreError as e:
            raise InputError(f"AWSSecretsManagerError: {type(e).__name__} calling {what}") from None

    result = Adoption(plan)
    described = {s.name: call(f"DescribeSecret {s.name}", sm.describe_secret, SecretId=s.name) for s in plan.secrets}
    scheduled = [name for name, d in described.items() if d and d.get("DeletedDate")]
    if scheduled and not restore:
        raise InputError(
            f"{', '.join(scheduled)}: scheduled for deletion (AWS keeps the name for the recovery window), so "
            f"`pulumi up` cannot create it again; run `python -m components adopt --backend aws "
            f"--namespace {plan.namespace} --restore`, then `pulumi import --file import.json`, then `pulumi up`"
        )
    for name in scheduled:
        call(f"RestoreSecret {name}", sm.restore_secret, SecretId=name)
        result.restored.append(name)
    for spot in plan.secrets:
        found = described[spot.name]
        if found is None:
            result.secrets_missing.append(spot.name)
            continue
        result.secrets_found.append(spot.name)
        arn = found["ARN"]
        result.found.append((naming.AWS_SECRET, spot.logical_name, arn))
        versions = call(f"ListSecretVersionIds {spot.name}", sm.list_secret_version_ids, SecretId=arn) or {}
        current = [v["VersionId"] for v in versions.get("Versions", []) if "AWSCURRENT" in v.get("VersionStages", [])]
        if current:  # else the secret has no value yet: the next up writes one
            result.found.append((naming.AWS_SECRET_VERSION, spot.logical_name, f"{arn}|{current[0]}"))
    arns: dict[str, str] = {}
    for page in call("ListPolicies", iam.get_paginator("list_policies").paginate, Scope="Local"):
        arns.update({p["PolicyName"]: p["Arn"] for p in page.get("Policies", [])})
    for policy in plan.policies:
        if policy.name not in arns:
            result.policies_missing.append(policy.name)
            continue
        result.policies_found.append(policy.name)
        result.found.append((naming.IAM_POLICY, policy.logical_name, arns[policy.name]))
    return result


# --- the command ------------------------------------------------------------------------------------------


def report(result: Adoption, out: Path | None) -> str:
    plan = result.plan
    lines = [
        f"Found {len(result.secrets_found)} of {len(plan.secrets)} secrets in {plan.store} "
        f"(namespace {plan.namespace}): {', '.join(result.secrets_found) or '-'}"
    ]
    if result.secrets_missing:
        lines.append(f"  not found (the next `pulumi up` creates them): {', '.join(result.secrets_missing)}")
    if result.restored:
        lines.append(f"  restored from scheduled deletion: {', '.join(result.restored)}")
    found_policies = ", ".join(result.policies_found) or "-"
    lines.append(f"Found {len(result.policies_found)} of {len(plan.policies)} policies: {found_policies}")
    if result.policies_missing:
        lines.append(f"  not found: {', '.join(result.policies_missing)}")
    if result.roles_found:
        lines.append(f"Found AppRole roles: {', '.join(result.roles_found)}")
    if out is None:
        lines.append("Nothing to adopt: `pulumi up` creates everything.")
    else:
        lines.append(
            f"Wrote {out} ({len(result.found)} resources). Next: `pulumi import --stack <stack> --file {out}`, "
            "then `pulumi up --stack <stack>`."
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    problem = naming.name_problem("namespace", args.namespace)
    if problem:
        raise InputError(f"--namespace: {problem}")
    plan = layout(load(args.manifest), args.backend, args.namespace, args.vault_mount)
    vault = args.backend == "vault"
    result = adopt_vault(plan, args.approle_mount) if vault else adopt_aws(plan, args.restore)
    out: Path | None = args.out if result.found else None
    if out is not None:
        try:
            write_atomic(out, json.dumps(import_file(plan, result.found), indent=4) + "\n")
        except OSError as e:
            raise InputError(f"{out}: cannot write the import file ({e.strerror or type(e).__name__})") from None
    print(report(result, out))
    return EXIT_OK
