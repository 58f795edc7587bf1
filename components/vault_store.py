"""`VaultSecretStore`: a namespace's secrets in Vault KV v2 and the policies that read them.

`vault kv get secret/staging/alpaca/api_key_id` then shows `value=...`, exactly as in the runbook.
"""

import json
from collections.abc import Mapping, Sequence
from typing import TypedDict

import pulumi
import pulumi_vault as vault

from components.naming import secret_name, vault_namespace_policy, vault_service_policy
from components.policies import vault_namespace_policy_hcl, vault_service_policy_hcl
from components.settings import StoredSecret


class VaultSecretStoreArgs(TypedDict):
    namespace: str
    """Path prefix of this environment under the mount: `staging`."""
    mount: str
    """KV v2 mount path: `secret`."""
    manage_mount: bool
    """Create the mount (False: it already exists, as on a dev server)."""
    services: Sequence[str]
    """Services that get a read policy, in manifest order."""
    secrets: Mapping[str, StoredSecret]
    """Env key -> path, readers and (secret) value."""


class VaultSecretStore(pulumi.ComponentResource):  # type: ignore[misc]  # pulumi is untyped to mypy
    secret_paths: pulumi.Output[dict[str, str]]
    """Env key -> full KV path as the `vault kv` CLI takes it: `secret/staging/alpaca/api_key_id`."""
    policies: pulumi.Output[dict[str, str]]
    """Service -> name of its read policy: `staging-signal-service-read`."""
    namespace_policy: pulumi.Output[str]
    """Name of the namespace-wide read policy: `staging-secrets-read`."""

    def __init__(self, name: str, args: VaultSecretStoreArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("secrets-migration:index:VaultSecretStore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ns, mount = args["namespace"], args["mount"]

        # Referencing the Mount's output orders every write after the mount exists.
        mount_ref: pulumi.Input[str] = mount
        if args["manage_mount"]:
            kv = vault.Mount(
                f"{name}-mount",
                path=mount,
                type="kv",
                options={"version": "2"},
                description=f"KV v2 for secrets-migration ({ns})",
                opts=child,
            )
            mount_ref = kv.path

        for key, secret in args["secrets"].items():
            vault.kv.SecretV2(
                f"{name}-{key}",
                mount=mount_ref,
                name=secret_name(ns, secret["path"]),
                data_json=pulumi.Output.secret(secret["value"]).apply(lambda v: json.dumps({"value": v})),
                # A secret dropped from the manifest goes away whole (metadata too), so `kv list` and
                # `verify` do not keep seeing a soft-deleted path.
                delete_all_versions=True,
                opts=child,
            )

        policies: dict[str, pulumi.Output[str]] = {}
        for service in args["services"]:
            paths = [s["path"] for s in args["secrets"].values() if service in s["readers"]]
            if not paths:  # Vault refuses an empty policy; a service that reads nothing gets none.
                continue
            policy = vault.Policy(
                f"{name}-{service}-read",
                name=vault_service_policy(ns, service),
                policy=vault_service_policy_hcl(mount, ns, paths),
                opts=child,
            )
            policies[service] = policy.name

        vault.Policy(
            f"{name}-namespace-read",
            name=vault_namespace_policy(ns),
            policy=vault_namespace_policy_hcl(mount, ns),
            opts=child,
        )

        self.secret_paths = pulumi.Output.from_input(
            {key: f"{mount}/{secret_name(ns, s['path'])}" for key, s in args["secrets"].items()}
        )
        self.policies = pulumi.Output.from_input(policies)
        self.namespace_policy = pulumi.Output.from_input(vault_namespace_policy(ns))
        self.register_outputs(
            {
                "secret_paths": self.secret_paths,
                "policies": self.policies,
                "namespace_policy": self.namespace_policy,
            }
        )
