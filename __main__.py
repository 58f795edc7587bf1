"""The Pulumi program: stack config -> manifest -> layout -> values -> one secret store -> exports (no values)."""

import gc

import pulumi

from components import naming
from components.aws_store import AwsSecretStore, AwsSecretStoreArgs
from components.manifest import sha256_of_file
from components.pending import stop_if_pending
from components.settings import ConfigError, load_manifest, load_settings, stack_layout
from components.values import load_values
from components.vault_store import VaultSecretStore, VaultSecretStoreArgs

# The cyclic garbage collector, not the program, made cost grow faster than the stack: its full-heap
# scans over the SDK's per-resource objects took a 5,000-secret stack to 6.1x the 1,000 one (default
# thresholds) or 5.6-6.3x (raised ones). The SDK leaves few reference cycles (peak memory +7% without
# the collector at 5,000 secrets) and the program is a short-lived process, so it runs without one
# (bench/program_scale.py, docs/benchmarks.md). Reference counting still frees everything else.
gc.disable()

try:
    settings = load_settings()
    manifest = load_manifest(settings)
    plan = stack_layout(settings, manifest)
    if settings.backend == "aws" and settings.aws_check_recovery_window:
        # A revert that re-adds a secret AWS still holds scheduled for deletion would fail half-way
        # through `pulumi up`; refuse it here, in preview already, with the commands that bring it back.
        aws = pulumi.Config("aws")
        stop_if_pending(plan, aws.get("region"), aws.get("profile"))
    values = load_values(settings, manifest)
except ConfigError as e:
    raise pulumi.RunError(str(e)) from None

# Children inherit `protect` from the component (AWS secret versions opt out: see aws_store).
opts = pulumi.ResourceOptions(protect=settings.protect)
store: VaultSecretStore | AwsSecretStore
if settings.backend == "vault":
    store = VaultSecretStore(
        naming.STORE,
        VaultSecretStoreArgs(
            layout=plan, values=values, manage_mount=settings.vault_manage_mount, approle=settings.vault_approle
        ),
        opts,
    )
    pulumi.export("appRoles", store.app_roles)
else:
    store = AwsSecretStore(
        naming.STORE,
        AwsSecretStoreArgs(
            layout=plan,
            values=values,
            kms_key_id=settings.aws_kms_key_id,
            recovery_window_in_days=settings.aws_recovery_window_in_days,
            service_roles=settings.aws_service_roles,
        ),
        opts,
    )

pulumi.export("backend", settings.backend)
pulumi.export("namespace", settings.namespace)
pulumi.export("secretPaths", store.secret_paths)
pulumi.export("policies", store.policies)
pulumi.export("manifestSha256", sha256_of_file(settings.manifest_path))
