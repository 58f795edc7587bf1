"""What one `verify` run checks, and how it connects: a typed, frozen options object.

The command line builds it (components/cli.py `verify_command`) from its flags and the environment;
the checkers read nothing else — in particular never `os.environ`, so the token is always the one
passed here (`vault_token`, kept out of `repr`).
"""

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from components import naming
from components.layout import Backend
from components.manifest import DEFAULT_MANIFEST, path_problem

AppRoleCheck = Literal["auto", "required", "off"]
DEFAULT_CONCURRENCY = 32
DEFAULT_TIMEOUT = 120.0
"""Seconds for the whole run (issue 9: a server that trickles must not hold CI for minutes)."""
MOUNT_PATTERN = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*/?")


@dataclass(frozen=True)
class VerifyOptions:
    backend: Backend
    namespace: str
    manifest: Path = Path(DEFAULT_MANIFEST)
    env_file: Path | None = None
    """Compare every value's SHA-256 with this `.env`'s; None: presence only."""
    vault_addr: str = ""
    vault_token: str = field(default="", repr=False)
    vault_mount: str = naming.DEFAULT_MOUNT
    vault_tls_verify: bool | str = True
    """True, False (VAULT_SKIP_VERIFY) or a CA bundle file / directory (VAULT_CACERT / VAULT_CAPATH)."""
    vault_proxy: str | None = None
    """HTTP(S) proxy URL for Vault, as resolved from the environment by the caller; None: direct."""
    approle: AppRoleCheck = "auto"
    """`required`: every service with a policy must have its role; `auto`: check the roles when the
    namespace has any in the auth mount (say so when it has none); `off`: do not check."""
    approle_mount: str = naming.DEFAULT_APPROLE_MOUNT
    aws_region: str | None = None
    """None: the AWS profile's region (botocore ignores AWS_REGION on its own; the CLI passes it)."""
    concurrency: int = DEFAULT_CONCURRENCY
    timeout: float = DEFAULT_TIMEOUT
    """Seconds for the whole run."""
    json: bool = False

    def problem(self) -> str | None:
        """Why these options cannot be used (one line naming the flag), or None."""
        problem = naming.name_problem("namespace", self.namespace)
        if problem:
            return f"--namespace: {problem}"
        if self.concurrency < 1:
            return "--concurrency must be at least 1"
        if not math.isfinite(self.timeout) or self.timeout <= 0:
            return "--timeout must be a positive number of seconds"
        if not MOUNT_PATTERN.fullmatch(self.vault_mount):
            return "--vault-mount must be a mount path such as secret"
        if path_problem(self.approle_mount.strip("/")):
            return "--approle-mount must be a mount path such as approle"
        return None
