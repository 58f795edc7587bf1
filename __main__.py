"""The Pulumi program: stack config -> manifest -> values -> one secret store -> exports (no values)."""

import gc

import pulumi

from components import naming
from components.aws_store import AwsSecretStore, AwsSecretStoreArgs
from components.manifest import sha256_of_file
from components.settings import load_manifest, load_settings, load_values, stored_secrets
from components.vault_store import VaultSecretStore, VaultSecretStoreArgs

# The cyclic garbage collector, not the program, made cost grow faster than the stack: its full-heap
# scans over the SDK's per-resource objects took a 5,000-secret stack to 6.1x the 1,000 one (default
# thresholds) or 5.6-6.3x (raised ones). The SDK leaves few reference cycles (peak memory +7% without
# the collector at 5,000 secrets) and the program is a short-lived process, so it runs without one
# (bench/program_scale.py, docs/benchmarks.md). Reference counting still frees everything else.
gc.disable()

settings = load_settings()
manifest = load_manifest(settings)
secrets = stored_secrets(manifest, load_values(settings, manifest))
# Children inherit `protect` from the component.
opts = pulumi.ResourceOptions(protect=settings.protect)

store: VaultSecretStore | AwsSecretStore
if settings.backend == "vault":
    store = VaultSecretStore(
        naming.STORE,
        VaultSecretStoreArgs(
            namespace=settings.namespace,
            mount=settings.vault_mount,
            manage_mount=settings.vault_manage_mount,
            services=list(manifest.services),
            secrets=secrets,
        ),
        opts,
    )
else:
    store = AwsSecretStore(
        naming.STORE,
        AwsSecretStoreArgs(
            namespace=settings.namespace,
            services=list(manifest.services),
            secrets=secrets,
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
