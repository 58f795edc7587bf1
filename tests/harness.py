"""Run the real `__main__.py` under the Pulumi SDK's mocks, one fresh engine state per run.

    run = run_program("staging", {"values": {...}}, secret_keys=["values"])
    run.named("secrets-DATABASE_PASSWORD").inputs["dataJson"]

Config is what the CLI would hand the program: `Pulumi.yaml`'s defaults, then `Pulumi.<stack>.yaml`'s
`config:` (unless `use_stack_file=False`), then `config`. Keys without ':' get the `secrets-migration:`
prefix; non-string values are JSON-encoded (as the CLI passes objects, booleans and numbers).

Every registration is recorded through a `MockMonitor` subclass (which sees `protect` and `parent`, which
`Mocks` does not), with secret inputs unwrapped and their keys listed. Pass your own `Mocks` (e.g. one that
talks to real servers); it receives inputs exactly as the SDK sends them (secrets still wrapped; `unwrap`
helps). A duplicate URN fails the run, as the engine would.
"""

import gc
import json
import os
import runpy
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import rpc
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs

REPO = Path(__file__).resolve().parent.parent
PROGRAM = REPO / "__main__.py"
PROJECT = "secrets-migration"
ACCOUNT = "123456789012"
REGION = "us-east-1"


def unwrap(value: Any) -> tuple[Any, bool]:
    """(plain value, whether any part of it was secret) for a value as the mock monitor deserializes it."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            plain, _ = unwrap(value["value"])
            return plain, True
        pairs = {k: unwrap(v) for k, v in value.items()}
        return {k: p for k, (p, _) in pairs.items()}, any(s for _, s in pairs.values())
    if isinstance(value, list):
        items = [unwrap(v) for v in value]
        return [p for p, _ in items], any(s for _, s in items)
    return value, False


@dataclass(frozen=True)
class Registered:
    type: str
    name: str
    inputs: dict[str, Any]
    """Inputs with secrets unwrapped; keys camelCase as the engine sees them."""
    secret_inputs: set[str]
    """Top-level input keys whose value is (or contains) a secret."""
    protect: bool
    parent: str
    """Parent URN ('' for none). Mock URNs differ from the engine's: compare with another `.urn`."""
    urn: str


@dataclass
class ProgramRun:
    resources: list[Registered] = field(default_factory=list)
    exports: dict[str, Any] = field(default_factory=dict)

    def of_type(self, type_: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str) -> Registered:
        found = [r for r in self.resources if r.name == name]
        if len(found) != 1:
            raise KeyError(f"{len(found)} resources named {name!r}")
        return found[0]

    def names(self) -> set[str]:
        return {r.name for r in self.resources}


class DefaultMocks(pulumi.runtime.Mocks):  # type: ignore[misc]  # pulumi is untyped to mypy
    """id `<name>-id`, inputs echoed as state, plus the computed outputs the program reads."""

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        state = dict(args.inputs)
        name, _ = unwrap(args.inputs.get("name"))
        if args.typ == "aws:secretsmanager/secret:Secret":
            state["arn"] = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}-AbCdEf"
        elif args.typ == "aws:iam/policy:Policy":
            state["arn"] = f"arn:aws:iam::{ACCOUNT}:policy/{name}"
        elif args.typ == "vault:kv/secretV2:SecretV2":
            mount, _ = unwrap(args.inputs.get("mount"))
            state["path"] = f"{mount}/data/{name}"
        return f"{args.name}-id", state

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        return {}, []  # the program makes no invokes; an empty result and no failures


class RecordingMonitor(MockMonitor):  # type: ignore[misc]
    """Sees what `Mocks` cannot (protect, parent) and refuses a URN registered twice."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.recorded: list[Registered] = []
        self.urns: set[str] = set()
        self.duplicates: list[str] = []

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            raw = rpc.deserialize_properties(request.object)
            inputs: dict[str, Any] = {}
            secret: set[str] = set()
            for key, value in raw.items():
                inputs[key], is_secret = unwrap(value)
                if is_secret:
                    secret.add(key)
            if response.urn in self.urns:
                self.duplicates.append(response.urn)
            self.urns.add(response.urn)
            self.recorded.append(
                Registered(
                    request.type, request.name, inputs, secret, bool(request.protect), request.parent, response.urn
                )
            )
        return response


def _config_value(value: object) -> str:
    if isinstance(value, dict) and set(value) == {"secure"}:
        raise ValueError("the harness cannot decrypt `secure:` config; pass the value in `config` instead")
    return value if isinstance(value, str) else json.dumps(value)


def _full_key(key: str) -> str:
    return key if ":" in key else f"{PROJECT}:{key}"


def project_defaults() -> dict[str, str]:
    """The `default:` of each key `Pulumi.yaml` declares (what the CLI adds when a stack does not set it)."""
    project = yaml.safe_load((REPO / "Pulumi.yaml").read_text(encoding="utf-8"))
    defaults: dict[str, str] = {}
    for key, decl in (project.get("config") or {}).items():
        if isinstance(decl, dict) and "default" in decl:
            defaults[_full_key(key)] = _config_value(decl["default"])
        elif isinstance(decl, dict) and "value" in decl:
            defaults[_full_key(key)] = _config_value(decl["value"])
        elif not isinstance(decl, dict):
            defaults[_full_key(key)] = _config_value(decl)
    return defaults


def stack_config(stack: str) -> dict[str, str]:
    """`Pulumi.<stack>.yaml`'s `config:` as the CLI hands it to the program."""
    data = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text(encoding="utf-8")) or {}
    return {_full_key(k): _config_value(v) for k, v in (data.get("config") or {}).items()}


@contextmanager
def _cwd(path: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def run_program(
    stack: str,
    config: dict[str, object] | None = None,
    *,
    secret_keys: Iterable[str] = (),
    mocks: pulumi.runtime.Mocks | None = None,
    preview: bool = False,
    use_stack_file: bool = True,
) -> ProgramRun:
    """Run `__main__.py` as `pulumi up` (or `preview`) would for `stack`; program errors propagate."""
    merged = project_defaults()
    if use_stack_file:
        merged.update(stack_config(stack))
    merged.update({_full_key(k): _config_value(v) for k, v in (config or {}).items()})

    monitor = RecordingMonitor(mocks or DefaultMocks())
    # A fresh root Stack per run: set_mocks only creates one when none is set.
    runtime_settings.ROOT.set(None)
    pulumi.runtime.set_mocks(monitor.mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor)
    pulumi.runtime.set_all_config(merged, secret_keys=[_full_key(k) for k in secret_keys])

    run = ProgramRun()

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def program() -> pulumi.Output[Any]:
        runpy.run_path(str(PROGRAM), run_name="__main__")
        root = runtime_settings.get_root_resource()
        outputs: dict[str, Any] = dict(getattr(root, "outputs", {}) or {})
        names = list(outputs)
        return pulumi.Output.all(*[outputs[n] for n in names]).apply(
            lambda values: run.exports.update(zip(names, values, strict=True))
        )

    # The program switches the cyclic collector off for its own (short-lived) process; not for pytest's.
    gc_was_enabled = gc.isenabled()
    try:
        with _cwd(REPO):
            program()
    finally:
        if gc_was_enabled:
            gc.enable()
    if monitor.duplicates:
        raise AssertionError(f"duplicate resource URNs: {sorted(set(monitor.duplicates))}")
    run.resources = list(monitor.recorded)
    return run
