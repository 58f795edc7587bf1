"""Run the real `__main__.py` under the Pulumi SDK's mocks, the way `pulumi up` / `preview` would run it.

- Config is what the CLI hands a program: `Pulumi.yaml`'s defaults, then `Pulumi.<stack>.yaml`'s `config:`,
  then the caller's overrides. Keys without `:` get the `secrets-migration:` prefix; non-strings are
  JSON-encoded (as the CLI passes objects, booleans and numbers).
- Every run gets a fresh root stack, so runs never share SDK state.
- `RecordingMonitor` sees each registration at the `RegisterResource` level, where `protect`, `parent`,
  `aliases`, `deleteBeforeReplace`, `retainOnDelete` and `dependencies` are visible (they are not in
  `MockResourceArgs`), computes URNs as the engine does, and refuses a URN registered twice.
- Whatever answers a registration (a plain `Mocks`, or the lifecycle engine's handler) gets a
  `Registration` with secrets unwrapped and the secret keys listed.
"""

import gc
import json
import os
import runpy
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.output import Unknown
from pulumi.runtime import rpc
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.mocks import MockMonitor, MockResourceArgs
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

REPO = Path(__file__).resolve().parents[2]
PROGRAM = REPO / "__main__.py"
PROJECT = "secrets-migration"
ROOT_STACK_TYPE = "pulumi:pulumi:Stack"
UNKNOWN = rpc.UNKNOWN
"""How the engine writes a value that is not known until apply (also what `preview --json` shows)."""
SECRET = {rpc._special_sig_key: rpc._special_secret_sig}


class UnknownResourceType(Exception):
    """The program registered a type (or made an invoke or read) the engine does not implement."""


class ProgramError(Exception):
    """The program itself failed (a `pulumi.RunError`, a duplicate URN, ...). The message has no value."""


def unwrap(value: Any) -> tuple[Any, bool]:
    """(plain value, whether any part of it was secret) for a value as the monitor deserializes it;
    unknowns (preview) become the `UNKNOWN` string."""
    if isinstance(value, Unknown):
        return UNKNOWN, False
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


def secret(value: Any) -> dict[str, Any]:
    """`value` marked secret, as a registration's outputs carry it back to the program."""
    return {**SECRET, "value": value}


@dataclass(frozen=True)
class Registration:
    """One `RegisterResource` call: what the engine's step generator gets."""

    type: str
    name: str
    urn: str
    """The engine's URN: `urn:pulumi:<stack>::<project>::<parent type chain$>type::<name>`."""
    inputs: dict[str, Any]
    """Secrets unwrapped; keys camelCase as the engine sees them; unknowns are `UNKNOWN`."""
    secret_inputs: frozenset[str]
    """Top-level input keys whose value is (or contains) a secret."""
    protect: bool
    parent: str
    custom: bool = True
    retain_on_delete: bool = False
    delete_before_replace: bool | None = None
    """None: the provider decides (all of ours: create before delete)."""
    aliases: tuple[str, ...] = ()
    """Alias specs resolved to URNs (step_generator.go collapseAliasToUrn)."""
    dependencies: tuple[str, ...] = ()
    provider: str = ""
    """An explicit provider reference `<urn>::<id>`; empty for the default provider."""


Registered = Registration
"""The name tests/harness.py used."""
Handler = Callable[[Registration], tuple[str | None, dict[str, Any]]]
"""Answers a registration with (id, outputs); outputs may hold `secret(...)` values."""


@dataclass
class ProgramRun:
    resources: list[Registration] = field(default_factory=list)
    exports: dict[str, Any] = field(default_factory=dict)
    root_urn: str = ""

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str) -> Registration:
        found = [r for r in self.resources if r.name == name]
        if len(found) != 1:
            raise KeyError(f"{len(found)} resources named {name!r}")
        return found[0]

    def names(self) -> set[str]:
        return {r.name for r in self.resources}


# --- URNs as the engine builds them --------------------------------------------------------------------


def qualified_type(urn: str) -> str:
    """`urn:pulumi:s::p::a$b::name` -> `a$b`."""
    return urn.split("::")[2]


def make_urn(stack: str, project: str, parent: str, type_: str, name: str) -> str:
    """resource.NewURN: the parent's whole type chain prefixes the type, except the root stack's."""
    if parent and qualified_type(parent) != ROOT_STACK_TYPE:
        type_ = f"{qualified_type(parent)}${type_}"
    return f"urn:pulumi:{stack}::{project}::{type_}::{name}"


def alias_urn(alias: Any, name: str, type_: str, parent: str) -> str:
    """An `Alias` proto as a URN, defaults taken from the resource (step_generator.go collapseAliasToUrn)."""
    if alias.WhichOneof("alias") == "urn":
        return str(alias.urn)
    spec = alias.spec
    alias_parent = "" if spec.noParent else (spec.parentUrn or parent)
    return make_urn(
        spec.stack or pulumi.get_stack(),
        spec.project or pulumi.get_project(),
        alias_parent,
        spec.type or type_,
        spec.name or name,
    )


# --- the monitor -----------------------------------------------------------------------------------------


class DefaultMocks(pulumi.runtime.Mocks):  # type: ignore[misc]  # pulumi is untyped to mypy
    """id `<name>-id`, inputs echoed as state, plus the computed outputs the program reads."""

    ACCOUNT = "123456789012"
    REGION = "us-east-1"

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        state = dict(args.inputs)
        name, _ = unwrap(args.inputs.get("name"))
        if args.typ == "aws:secretsmanager/secret:Secret":
            state["arn"] = f"arn:aws:secretsmanager:{self.REGION}:{self.ACCOUNT}:secret:{name}-AbCdEf"
        elif args.typ == "aws:iam/policy:Policy":
            state["arn"] = f"arn:aws:iam::{self.ACCOUNT}:policy/{name}"
        elif args.typ == "vault:kv/secretV2:SecretV2":
            mount, _ = unwrap(args.inputs.get("mount"))
            state["path"] = f"{mount}/data/{name}"
        return f"{args.name}-id", state

    def call(self, args: Any) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        return {}, []  # the program makes no invokes; an empty result and no failures


def mocks_handler(mocks: pulumi.runtime.Mocks) -> Handler:
    """Answer registrations with a plain `Mocks` (inputs as the SDK sent them: secrets still wrapped)."""

    def handle(registration: Registration) -> tuple[str | None, dict[str, Any]]:
        raw = {k: secret(v) if k in registration.secret_inputs else v for k, v in registration.inputs.items()}
        args = MockResourceArgs(
            typ=registration.type,
            name=registration.name,
            inputs=raw,
            provider=registration.provider,
            custom=registration.custom,
        )
        resource_id, state = mocks.new_resource(args)
        return resource_id, state

    return handle


class RecordingMonitor(MockMonitor):  # type: ignore[misc]
    """Hands every registration to `handler` (one at a time) and records it; refuses duplicate URNs."""

    def __init__(self, mocks: pulumi.runtime.Mocks, handler: Handler | None = None) -> None:
        super().__init__(mocks)
        self.handler = handler or mocks_handler(mocks)
        self.recorded: list[Registration] = []
        self.urns: set[str] = set()
        """Of `recorded`: a 10,000-resource program must not scan the list per registration."""
        self.duplicates: list[str] = []
        self.root_urn = ""
        self._lock = threading.Lock()

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        return make_urn(pulumi.get_stack(), pulumi.get_project(), parent, type_, name)

    def RegisterResource(self, request: Any) -> Any:
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == ROOT_STACK_TYPE:
            self.root_urn = urn
            return resource_pb2.RegisterResourceResponse(urn=urn)
        _ensure_event_loop()  # deserializing resource references needs one on this thread
        raw = rpc.deserialize_properties(request.object, keep_unknowns=True)
        inputs: dict[str, Any] = {}
        secret_keys: set[str] = set()
        for key, value in raw.items():
            inputs[key], is_secret = unwrap(value)
            if is_secret:
                secret_keys.add(key)
        registration = Registration(
            type=request.type,
            name=request.name,
            urn=urn,
            inputs=inputs,
            secret_inputs=frozenset(secret_keys),
            protect=bool(request.protect),
            parent=request.parent,
            custom=bool(request.custom),
            retain_on_delete=bool(request.retainOnDelete),
            delete_before_replace=request.deleteBeforeReplace if request.deleteBeforeReplaceDefined else None,
            aliases=tuple(alias_urn(a, request.name, request.type, request.parent) for a in request.aliases),
            dependencies=tuple(request.dependencies),
            provider=request.provider,
        )
        # One registration at a time: the SDK registers from several threads, the engine steps in order.
        with self._lock:
            if urn in self.urns:
                self.duplicates.append(urn)
            self.urns.add(urn)
            self.recorded.append(registration)
            resource_id, outputs = self.handler(registration)
        state = _sync_await(rpc.serialize_properties(outputs, {}))
        self.resources[urn] = MockMonitor.ResourceRegistration(urn, resource_id, outputs)
        return resource_pb2.RegisterResourceResponse(urn=urn, id=resource_id or "", object=state)

    def Invoke(self, request: Any) -> Any:
        raise UnknownResourceType(f"the engine does not implement the invoke {request.tok}")

    def ReadResource(self, request: Any) -> Any:
        raise UnknownResourceType(f"the engine does not implement reading {request.type} ({request.name})")


# --- config ------------------------------------------------------------------------------------------------


def full_key(key: str) -> str:
    return key if ":" in key else f"{PROJECT}:{key}"


def _config_value(value: object) -> str:
    if isinstance(value, dict) and set(value) == {"secure"}:
        raise ValueError("the engine cannot decrypt `secure:` config; pass the value in `config` instead")
    return value if isinstance(value, str) else json.dumps(value)


def _has_secure(value: object) -> bool:
    if isinstance(value, dict):
        return set(value) == {"secure"} or any(_has_secure(v) for v in value.values())
    return isinstance(value, list) and any(_has_secure(v) for v in value)


def project_defaults(project_dir: Path = REPO) -> dict[str, str]:
    """The `default:` (or `value:`) of each key `Pulumi.yaml` declares."""
    project = yaml.safe_load((project_dir / "Pulumi.yaml").read_text(encoding="utf-8"))
    defaults: dict[str, str] = {}
    for key, decl in (project.get("config") or {}).items():
        if isinstance(decl, dict):
            for source in ("default", "value"):
                if source in decl:
                    defaults[full_key(key)] = _config_value(decl[source])
                    break
        else:
            defaults[full_key(key)] = _config_value(decl)
    return defaults


def stack_config(stack: str, project_dir: Path = REPO, decrypted: Iterable[str] = ()) -> dict[str, str]:
    """`Pulumi.<stack>.yaml`'s `config:` as the CLI hands it to the program. A key holding `secure:`
    ciphertext must be among `decrypted` (the caller passes its plaintext as an override)."""
    path = project_dir / f"Pulumi.{stack}.yaml"
    data = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.exists() else {}
    config: dict[str, str] = {}
    for key, value in (data.get("config") or {}).items():
        if _has_secure(value) and full_key(key) in decrypted:
            continue
        config[full_key(key)] = _config_value(value)
    return config


def merged_config(
    stack: str,
    overrides: Mapping[str, object] | None,
    project_dir: Path = REPO,
    use_stack_file: bool = True,
) -> dict[str, str]:
    """Project defaults < stack file < overrides, as full keys and strings."""
    given = {full_key(k): _config_value(v) for k, v in (overrides or {}).items()}
    merged = project_defaults(project_dir)
    if use_stack_file:
        merged.update(stack_config(stack, project_dir, decrypted=given))
    merged.update(given)
    return merged


def _drop_unretrieved_futures(loop: Any, context: dict[str, Any]) -> None:
    if context.get("message") != "Future exception was never retrieved":
        loop.default_exception_handler(context)


@contextmanager
def _cwd(path: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


PACKAGE = "components"


@contextmanager
def _program_package(project_dir: Path) -> Iterator[None]:
    """A program from another checkout (`project_dir` with its own `components/`, e.g. an older commit's)
    imports that checkout's package, as its own `pulumi up` process would; the engine's modules
    (`components.engine`) stay as they are, and everything is put back afterwards."""
    loaded = sys.modules.get(PACKAGE)
    own = project_dir.resolve() / PACKAGE
    if not (own / "__init__.py").exists() or (loaded is not None and Path(loaded.__path__[0]).resolve() == own):
        yield
        return

    def swappable(name: str) -> bool:
        return (name == PACKAGE or name.startswith(f"{PACKAGE}.")) and not name.startswith(f"{PACKAGE}.engine")

    saved = {name: module for name, module in sys.modules.items() if swappable(name)}
    for name in saved:
        del sys.modules[name]
    sys.path.insert(0, str(own.parent))
    try:
        yield
    finally:
        sys.path.remove(str(own.parent))
        for name in [n for n in sys.modules if swappable(n)]:
            del sys.modules[name]
        sys.modules.update(saved)


def run_program(
    stack: str,
    config: Mapping[str, object] | None = None,
    *,
    secret_keys: Iterable[str] = (),
    mocks: pulumi.runtime.Mocks | None = None,
    handler: Handler | None = None,
    preview: bool = False,
    use_stack_file: bool = True,
    program: Path = PROGRAM,
    project_dir: Path | None = None,
) -> ProgramRun:
    """Run `program` as `pulumi up` (or `preview`) would for `stack`, in `project_dir` (where
    `Pulumi.yaml` is; default: the program's directory), with `project_dir`'s own `components` package
    if it has one (another checkout of this project).

    Registrations go to `handler`, else to `mocks` (default: `DefaultMocks`). Program errors propagate;
    a duplicate URN raises `ProgramError`, as the engine refuses one.
    """
    project_dir = project_dir or program.parent
    merged = merged_config(stack, config, project_dir, use_stack_file)
    if handler is None and full_key("awsCheckRecoveryWindow") not in {full_key(k) for k in config or {}}:
        # The SDK's mocks alone have no AWS to ask which secrets are scheduled for deletion.
        merged[full_key("awsCheckRecoveryWindow")] = "false"
    monitor = RecordingMonitor(mocks or DefaultMocks(), handler)
    # A fresh root Stack per run: set_mocks only creates one when none is set.
    runtime_settings.ROOT.set(None)
    pulumi.runtime.set_mocks(monitor.mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor)
    pulumi.runtime.set_all_config(merged, secret_keys=[full_key(k) for k in secret_keys])

    run = ProgramRun()

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def main() -> pulumi.Output[Any]:
        runpy.run_path(str(program), run_name="__main__")
        root = runtime_settings.get_root_resource()
        outputs: dict[str, Any] = dict(getattr(root, "outputs", {}) or {})
        names = list(outputs)
        return pulumi.Output.all(*[outputs[n] for n in names]).apply(
            lambda values: run.exports.update(zip(names, values, strict=True))
        )

    # The program switches the cyclic collector off for its own (short-lived) process; not for ours.
    gc_was_enabled = gc.isenabled()
    # A failed registration fails every output waiting on it, and asyncio would log each of those futures
    # when it is collected. The error itself propagates from `main()`; drop the echoes.
    _ensure_event_loop().set_exception_handler(_drop_unretrieved_futures)
    try:
        with _cwd(project_dir), _program_package(project_dir):
            main()
    finally:
        if gc_was_enabled:
            gc.enable()
    if monitor.duplicates:
        raise ProgramError(f"Duplicate resource URN(s): {', '.join(sorted(set(monitor.duplicates)))}")
    run.resources = list(monitor.recorded)
    run.root_urn = monitor.root_urn
    return run
