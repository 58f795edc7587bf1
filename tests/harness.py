"""Run the real `__main__.py` under the Pulumi SDK's mocks, one fresh engine state per run.

The runner lives in `components.engine.program` (the lifecycle engine and `make demo` use it too); this
module keeps the names the unit tests import.

    run = run_program("staging", {"values": {...}}, secret_keys=["values"])
    run.named("secrets/database/password").inputs["dataJson"]
"""

from collections.abc import Iterable

import pulumi
from pulumi.runtime import rpc

from components.engine import program as _program
from components.engine.program import (
    PROJECT,
    REPO,
    DefaultMocks,
    ProgramRun,
    RecordingMonitor,
    Registered,
    Registration,
    _config_value,
    project_defaults,
    unwrap,
)

PROGRAM = _program.PROGRAM
ACCOUNT = DefaultMocks.ACCOUNT
REGION = DefaultMocks.REGION


def stack_config(stack: str) -> dict[str, str]:
    """`Pulumi.<stack>.yaml`'s `config:` as the CLI hands it to the program."""
    return _program.stack_config(stack, REPO)


def run_program(
    stack: str,
    config: dict[str, object] | None = None,
    *,
    secret_keys: Iterable[str] = (),
    mocks: pulumi.runtime.Mocks | None = None,
    preview: bool = False,
    use_stack_file: bool = True,
) -> ProgramRun:
    """Run `PROGRAM` as `pulumi up` (or `preview`) would for `stack`; program errors propagate."""
    return _program.run_program(
        stack,
        config,
        secret_keys=secret_keys,
        mocks=mocks,
        preview=preview,
        use_stack_file=use_stack_file,
        program=PROGRAM,
        project_dir=REPO,
    )


__all__ = [
    "ACCOUNT",
    "PROJECT",
    "REGION",
    "DefaultMocks",
    "ProgramRun",
    "RecordingMonitor",
    "Registered",
    "Registration",
    "_config_value",
    "project_defaults",
    "rpc",
    "run_program",
    "stack_config",
    "unwrap",
]
