"""The stack's layout: from manifest + backend + namespace + mount, where every secret lives and which
policy grants what. Pure (no Pulumi import).

The one place that decides the shape of a stack. The two stores register exactly this, the migration's
dry run prints it, `verify` checks it, `run` reads it and `adopt` looks for it; tests/test_layout.py
holds the program's registrations against it.

    plan = layout(manifest, "vault", "staging")
    plan.secret("DATABASE_PASSWORD").location     # secret/staging/database/password
    plan.policy_of("orchestrator").name           # staging-orchestrator-read
"""

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from components import naming
from components.manifest import Manifest

Backend = Literal["vault", "aws"]
BACKEND_NAMES = {"vault": "Vault", "aws": "AWS Secrets Manager"}


@dataclass(frozen=True)
class SecretSpot:
    """One manifest secret, placed."""

    key: str
    """The `.env` key: `ALPACA_API_KEY_ID` (the variable `run` sets)."""
    path: str
    """Relative to the namespace: `alpaca/api_key_id`."""
    readers: tuple[str, ...]
    name: str
    """The backend's name for it: `staging/alpaca/api_key_id` (KV name under the mount; AWS secret name)."""
    location: str
    """As the backend's CLI takes it: `secret/staging/alpaca/api_key_id` (vault kv get) or the AWS name."""
    read_path: str
    """What a read policy names: `secret/data/staging/alpaca/api_key_id` (Vault) or the AWS name."""
    logical_name: str
    """Its resources' logical name in the stack: `secrets/alpaca/api_key_id`."""


@dataclass(frozen=True)
class PolicySpot:
    """One read policy: a service's (exactly its secrets) or the namespace's (every secret, for operators)."""

    service: str | None
    """None for the namespace-wide policy."""
    name: str
    logical_name: str
    keys: tuple[str, ...]
    """The env keys it grants read on, sorted."""
    approle: str | None
    """Vault: the AppRole role name a service logs in with (created when AppRole is on); else None."""

    @property
    def label(self) -> str:
        return self.service or "(namespace)"


@dataclass(frozen=True)
class Layout:
    backend: Backend
    namespace: str
    mount: str
    """KV v2 mount (Vault); empty for AWS."""
    secrets: tuple[SecretSpot, ...]
    """Sorted by env key."""
    policies: tuple[PolicySpot, ...]
    """Services with at least one secret, in manifest order, then the namespace policy (if any)."""
    services: tuple[str, ...]
    """Every service of the manifest, including those that read nothing (and so get no policy)."""

    @property
    def store(self) -> str:
        return BACKEND_NAMES[self.backend]

    @cached_property
    def _by_key(self) -> dict[str, SecretSpot]:
        return {s.key: s for s in self.secrets}

    def secret(self, key: str) -> SecretSpot:
        return self._by_key[key]

    def policy_of(self, service: str | None) -> PolicySpot | None:
        """The service's policy (None: the namespace's); None when there is none."""
        return next((p for p in self.policies if p.service == service), None)

    def readable_by(self, service: str) -> list[SecretSpot]:
        return [s for s in self.secrets if service in s.readers]

    def policy_name(self, service: str | None) -> str:
        """The name the policy has or would have, whether or not it exists."""
        if service is None:
            return naming.namespace_policy(self.backend, self.namespace)
        return naming.service_policy(self.backend, self.namespace, service)


def layout(manifest: Manifest, backend: Backend, namespace: str, mount: str = naming.DEFAULT_MOUNT) -> Layout:
    """Place every secret and policy of `manifest` in `namespace` of `backend`.

    - A service that reads no secret gets no policy: Vault and IAM both refuse an empty one.
    - AWS has no namespace policy without secrets: its resource pattern comes from a secret's ARN.
    - Vault always has the namespace policy (a glob needs no secret).
    """
    vault = backend == "vault"
    mount = mount.strip("/") if vault else ""
    secrets = tuple(
        SecretSpot(
            key=s.key,
            path=s.path,
            readers=s.readers,
            name=naming.secret_name(namespace, s.path),
            location=naming.vault_kv_path(mount, namespace, s.path) if vault else naming.secret_name(namespace, s.path),
            read_path=naming.vault_data_path(mount, namespace, s.path)
            if vault
            else naming.secret_name(namespace, s.path),
            logical_name=naming.secret_logical_name(s.path),
        )
        for _, s in sorted(manifest.secrets.items())
    )
    policies: list[PolicySpot] = []
    for service in manifest.services:
        keys = tuple(s.key for s in secrets if service in s.readers)
        if keys:
            policies.append(
                PolicySpot(
                    service=service,
                    name=naming.service_policy(backend, namespace, service),
                    logical_name=naming.policy_logical_name(service),
                    keys=keys,
                    approle=naming.approle_role(namespace, service) if vault else None,
                )
            )
    if vault or secrets:
        policies.append(
            PolicySpot(
                service=None,
                name=naming.namespace_policy(backend, namespace),
                logical_name=naming.policy_logical_name(None),
                keys=tuple(s.key for s in secrets),
                approle=None,
            )
        )
    return Layout(backend, namespace, mount, secrets, tuple(policies), tuple(manifest.services))
