"""AWS secrets scheduled for deletion: AWS keeps a deleted secret's name for its recovery window, so a
`CreateSecret` of that name (a revert that brings a removed secret back) fails half-way through
`pulumi up`. The program asks before it registers anything (so `pulumi preview` already refuses, with
what to run), and `adopt` asks before it restores and imports.
"""

from collections.abc import Iterable
from typing import Any

from components.environ import aws_region
from components.layout import Layout
from components.settings import ConfigError, key


def scheduled_for_deletion(secretsmanager: Any, plan: Layout) -> list[str]:
    """The layout's secrets that AWS holds scheduled for deletion: one ListSecrets walk of the namespace
    (names and dates only, never a value)."""
    wanted = {s.name for s in plan.secrets}
    found: list[str] = []
    pages = secretsmanager.get_paginator("list_secrets").paginate(
        IncludePlannedDeletion=True, Filters=[{"Key": "name", "Values": [f"{plan.namespace}/"]}]
    )
    for page in pages:
        found += [e["Name"] for e in page.get("SecretList", []) if e.get("DeletedDate") and e.get("Name") in wanted]
    return sorted(found)


def what_to_run(names: Iterable[str], namespace: str) -> str:
    """One line: which secrets, why `pulumi up` cannot create them, and the commands that bring them back."""
    return (
        f"{', '.join(names)}: scheduled for deletion (AWS keeps the name for the recovery window), so "
        f"`pulumi up` cannot create it again; run `python -m components adopt --backend aws "
        f"--namespace {namespace} --restore`, then `pulumi import --file import.json`, then `pulumi up`"
    )


def stop_if_pending(plan: Layout, region: str | None, profile: str | None) -> None:
    """The program's check, with the AWS provider's region and profile: a `ConfigError` (one line, before
    anything is created) when a secret of the layout is scheduled for deletion or AWS cannot be asked."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        session = boto3.session.Session(region_name=region or aws_region(), profile_name=profile or None)
        pending = scheduled_for_deletion(session.client("secretsmanager"), plan)
    except (ClientError, BotoCoreError) as e:
        code = e.response.get("Error", {}).get("Code", "") if isinstance(e, ClientError) else type(e).__name__
        raise ConfigError(
            f"cannot ask AWS which secrets are scheduled for deletion ({code}): the deploying identity needs "
            f"secretsmanager:ListSecrets, or set {key('awsCheckRecoveryWindow')} to false to skip the check"
        ) from None
    if pending:
        raise ConfigError(what_to_run(pending, plan.namespace))
