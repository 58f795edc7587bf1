#!/usr/bin/env python3
"""The runbook's Phase 3 migration script: check the .env, set the stack's config, `pulumi up`, verify.

    python scripts/migrate_secrets.py --env-file .env --backend vault --namespace staging \\
        --vault-addr http://127.0.0.1:8200 --vault-token-file ~/.vault-token-staging [--dry-run]

The work is `components.migrate` (its docstring says how values travel); `--help` lists the flags.
Exit codes: 0 migrated (or dry run clean); 1 check, `pulumi up` or verify failed; 2 bad input or cannot run.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: the project's package first

from components.dependencies import dependency_hint

if __name__ == "__main__":
    with dependency_hint():
        from components.migrate import main

        sys.exit(main())
