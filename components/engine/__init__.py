"""A lifecycle-faithful stand-in for the Pulumi CLI and its providers, for tests and `make demo`.

The Pulumi CLI and provider plugins cannot be installed here, so this runs the real `__main__.py` under
the SDK's mocks (`program`), keeps each stack's state across runs and turns each run into the steps
Pulumi's engine would take (`lifecycle`), making each provider's real calls against an OpenBao/Vault
server and a moto (AWS) server (`providers`). Importing `components` does not import this package.

    engine = Engine(vault_addr=url, vault_token=token)        # or aws_endpoint=moto_url
    first = engine.up("staging", config={"envFile": ".env"})   # pulumi up --yes
    first.outputs, first.digest, first.changes()               # exports, `preview --json`, steps
    engine.preview("staging", config=...)                      # pulumi preview --json (changes nothing)
    engine.unprotect(urn)                                      # pulumi state unprotect URN
    engine.import_resources("staging", json.load(f))           # pulumi import --file F
    engine.state("staging").to_json()                          # pulumi stack export (secrets as digests)

`up` and `preview` raise `PreviewFailed` (nothing changed; `.digest` has the error diagnostics) when
the engine refuses a step, `UpdateFailed` when a provider call fails (what was applied before it stays
in the state), `EngineError` when the program stops with an error, `UnknownResourceType` for a type,
input or invoke the engine does not implement.
"""

from components.engine.lifecycle import (
    Deployment,
    Engine,
    EngineError,
    PreviewFailed,
    Resource,
    StackState,
    Step,
    UpdateFailed,
)
from components.engine.program import ProgramError, UnknownResourceType, run_program

__all__ = [
    "Deployment",
    "Engine",
    "EngineError",
    "PreviewFailed",
    "ProgramError",
    "Resource",
    "StackState",
    "Step",
    "UnknownResourceType",
    "UpdateFailed",
    "run_program",
]
