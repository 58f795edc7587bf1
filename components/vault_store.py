"""`VaultSecretStore`: a namespace's secrets in Vault KV v2, the policies that read them, and (AppRole on)
one login role per service that carries exactly its read policy.

`vault kv get secret/staging/alpaca/api_key_id` then shows `value=...`, exactly as in the runbook.
What is registered is `components.layout`'s layout, nothing more.
"""

import json
from collections.abc import Mapping
from typing import TypedDict

import pulumi
import pulumi_vault as vault

from components import naming
from components.layout import Layout
from components.policies import vault_policy_hcl
from components.settings import AppRoleOptions


class VaultSecretStoreArgs(TypedDict):
    layout: Layout
    """Where every secret and policy goes (components.layout)."""
    values: Mapping[str, pulumi.Output[str]]
    """Env key -> (secret) value."""
    manage_mount: bool
    """Create the KV v2 mount (False: it already exists, as on a dev server)."""
    approle: AppRoleOptions | None
    """Per-service AppRole logins; None: none."""


class VaultSecretStore(pulumi.ComponentResource):  # type: ignore[misc]  # pulumi is untyped to mypy
    secret_paths: pulumi.Output[dict[str, str]]
    """Env key -> full KV path as the `vault kv` CLI takes it: `secret/staging/alpaca/api_key_id`."""
    policies: pulumi.Output[dict[str, str]]
    """Service -> name of its read policy: `staging-signal-service-read`."""
    namespace_policy: pulumi.Output[str]
    """Name of the namespace-wide read policy: `staging-secrets-read`."""
    app_roles: pulumi.Output[dict[str, dict[str, str]]]
    """Service -> {"role": AppRole name, "roleId": its role_id} (not secret: a login also needs a secret_id)."""

    def __init__(self, name: str, args: VaultSecretStoreArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(naming.VAULT_STORE_TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        plan = args["layout"]

        # Referencing the Mount's output orders every write after the mount exists.
        mount_ref: pulumi.Input[str] = plan.mount
        if args["manage_mount"]:
            kv = vault.Mount(
                naming.mount_logical_name(),
                path=plan.mount,
                type="kv",
                options={"version": "2"},
                description=naming.mount_description(plan.namespace),
                # Unmounting destroys every secret under the mount, of every namespace: never as a side
                # effect of a deploy. Removing it is a deliberate `bao secrets disable` (docs/stacks.md).
                opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(retain_on_delete=True)),
            )
            mount_ref = kv.path

        for spot in plan.secrets:
            vault.kv.SecretV2(
                spot.logical_name,
                mount=mount_ref,
                name=spot.name,
                data_json=pulumi.Output.secret(args["values"][spot.key]).apply(lambda v: json.dumps({"value": v})),
                # A secret dropped from the manifest goes away whole (metadata too), so `kv list` and
                # `verify` do not keep seeing a soft-deleted path.
                delete_all_versions=True,
                opts=pulumi.ResourceOptions.merge(
                    child,
                    pulumi.ResourceOptions(
                        aliases=[pulumi.Alias(name=naming.legacy_secret_logical_name(spot.key))],
                        # A replacement keeps the name (the logical name follows the path), so the old
                        # resource's delete would remove the new one's data: delete first, then write.
                        delete_before_replace=True,
                    ),
                ),
            )

        policies: dict[str, pulumi.Output[str]] = {}
        roles: dict[str, pulumi.Output[dict[str, str]]] = {}
        approle = args["approle"]
        approle_mount: pulumi.Input[str] = approle.mount if approle else ""
        if approle and approle.manage_mount:
            backend = vault.AuthBackend(
                naming.approle_mount_logical_name(),
                type="approle",
                path=approle.mount,
                description=f"AppRole logins for secrets-migration ({plan.namespace})",
                # Disabling an auth mount deletes every role in it, of every namespace.
                opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(retain_on_delete=True)),
            )
            approle_mount = backend.path
        for policy_spot in plan.policies:
            policy = vault.Policy(
                policy_spot.logical_name, name=policy_spot.name, policy=vault_policy_hcl(plan, policy_spot), opts=child
            )
            if policy_spot.service is None:
                continue
            policies[policy_spot.service] = policy.name
            if approle and policy_spot.approle:
                role = vault.approle.AuthBackendRole(
                    naming.approle_logical_name(policy_spot.service),
                    backend=approle_mount,
                    role_name=policy_spot.approle,
                    token_policies=[policy.name],
                    token_no_default_policy=True,
                    bind_secret_id=True,
                    token_ttl=approle.token_ttl,
                    token_max_ttl=approle.token_max_ttl,
                    secret_id_ttl=approle.secret_id_ttl,
                    token_bound_cidrs=list(approle.token_bound_cidrs) or None,
                    secret_id_bound_cidrs=list(approle.secret_id_bound_cidrs) or None,
                    opts=child,
                )
                roles[policy_spot.service] = pulumi.Output.all(role.role_name, role.role_id).apply(
                    lambda r: {"role": r[0], "roleId": r[1]}
                )

        self.secret_paths = pulumi.Output.from_input({s.key: s.location for s in plan.secrets})
        self.policies = pulumi.Output.from_input(policies)
        self.namespace_policy = pulumi.Output.from_input(plan.policy_name(None))
        self.app_roles = pulumi.Output.from_input(roles)
        self.register_outputs(
            {
                "secret_paths": self.secret_paths,
                "policies": self.policies,
                "namespace_policy": self.namespace_policy,
                "app_roles": self.app_roles,
            }
        )
