"""The policy pack's entry point: `pulumi preview --policy-pack policy --policy-pack-config ...` runs this.

Constructing `PolicyPack` starts the analyzer's gRPC server and blocks, so it happens here and nowhere
else; the rules live in `policy/rules.py`, where tests import them.
"""

import sys
from pathlib import Path

# The CLI runs this file with the pack directory as the working directory; the rules import
# `policy.rules` and `components.naming` from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack

from policy.rules import POLICIES

PolicyPack(name="secrets-migration", enforcement_level=EnforcementLevel.MANDATORY, policies=list(POLICIES))
