"""The engine proper: a stack's state across runs, and each run's steps, as Pulumi's deployment engine
makes them (pulumi/pulumi `pkg/resource/deploy/step_generator.go`, `step.go`, `step_executor.go`).

Per registration (`_Run.handle`), in program order:
- the old state is found by URN, then by each alias (`getOldResource`);
- no old state: **create**; else the provider's diff of old and new inputs: no change **same**, a change to
  a ForceNew input (or `--replace`) **replace**, any other change **update**;
- a replace of a resource protected both in state and in the program is refused with the engine's
  "unable to replace resource ... marked for protection" (a preview records the error and goes on);
- a replace creates the new resource first and deletes the old one with the deletes at the end, unless
  `deleteBeforeReplace`, which deletes it right away and then creates.
After the program (`_Run.finish`): every old resource nobody claimed is deleted, last and in reverse
order of the old state (what depends on a resource, its children too, goes first); a protected one fails
with `deleteProtectedError`; `retainOnDelete` forgets it without calling the provider.

`up` previews first and changes nothing when the preview has an error, as `pulumi up` does.
"""

import hashlib
import json
import secrets as token_source
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import hvac
import pulumi

from components.engine import program as prog
from components.engine.program import (
    PROGRAM,
    PROJECT,
    ROOT_STACK_TYPE,
    UNKNOWN,
    ProgramRun,
    Registration,
    UnknownResourceType,
)
from components.engine.providers import PROVIDERS, Api, Provider, ProviderError, aws_client, provider_for
from components.environ import environment

SECRET_MASK = "[secret]"
"""How `pulumi preview --json` shows a secret."""


class EngineError(Exception):
    """A deployment did not go through. The message holds URNs, names and the engine's text, never a value."""


class PreviewFailed(EngineError):
    """The preview had errors, so nothing was changed. `digest` is the preview's JSON."""

    def __init__(self, message: str, digest: dict[str, Any]) -> None:
        super().__init__(message)
        self.digest = digest


class UpdateFailed(EngineError):
    """A provider call failed during `up`; what was applied before it stays in the state (as with Pulumi)."""


# --- values as the state keeps them -------------------------------------------------------------------


@dataclass(frozen=True)
class Sealed:
    """A secret as the engine's state keeps it: a salted SHA-256, never the value. Enough to tell whether
    a new value differs, which is all a diff needs (no provider call needs an old secret)."""

    salt: str
    sha256: str

    @staticmethod
    def of(value: Any) -> "Sealed":
        if value == UNKNOWN:
            return Sealed("", "")  # not known until apply: differs from everything
        salt = token_source.token_hex(8)
        return Sealed(salt, _hash(salt, value))

    def matches(self, value: Any) -> bool:
        return bool(self.salt) and value != UNKNOWN and _hash(self.salt, value) == self.sha256


def _hash(salt: str, value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return hashlib.sha256(f"{salt}:{text}".encode()).hexdigest()


def _seal(values: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    secret = set(keys)
    return {k: Sealed.of(v) if k in secret and not isinstance(v, Sealed) else v for k, v in values.items()}


def _to_json(value: Any, masked: bool) -> Any:
    if isinstance(value, Sealed):
        return SECRET_MASK if masked else {**prog.SECRET, "salt": value.salt, "sha256": value.sha256}
    if isinstance(value, dict):
        return {k: _to_json(v, masked) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_json(v, masked) for v in value]
    return value


def _from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if all(value.get(k) == v for k, v in prog.SECRET.items()):
            return Sealed(value["salt"], value["sha256"])
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def _is_zero(value: Any) -> bool:
    return value in (None, "", 0, False) or value == [] or value == {}


# --- state -------------------------------------------------------------------------------------------------


@dataclass
class Resource:
    """One resource in a stack's state (the fields of apitype.ResourceV3 the engine uses)."""

    urn: str
    type: str
    custom: bool
    id: str = ""
    parent: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    protect: bool = False
    retain_on_delete: bool = False
    dependencies: list[str] = field(default_factory=list)
    provider: str = ""
    import_id: str = ""
    delete: bool = False
    """Replaced, its delete still to do (the next deploy does it)."""

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]

    def to_json(self, masked: bool = False) -> dict[str, Any]:
        """apitype.ResourceV3, `omitempty` as Pulumi writes it; secrets as "[secret]" when `masked`."""
        data: dict[str, Any] = {"urn": self.urn, "custom": self.custom, "delete": self.delete, "id": self.id}
        data.update(type=self.type, inputs=_to_json(self.inputs, masked), outputs=_to_json(self.outputs, masked))
        data.update(parent=self.parent, protect=self.protect, dependencies=self.dependencies, provider=self.provider)
        data.update(importID=self.import_id, retainOnDelete=self.retain_on_delete)
        return {k: v for k, v in data.items() if k in ("urn", "custom", "type") or v not in ("", False, [], {})}

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> "Resource":
        return Resource(
            urn=data["urn"],
            type=data["type"],
            custom=data["custom"],
            id=data.get("id", ""),
            parent=data.get("parent", ""),
            inputs=_from_json(data.get("inputs", {})),
            outputs=_from_json(data.get("outputs", {})),
            protect=data.get("protect", False),
            retain_on_delete=data.get("retainOnDelete", False),
            dependencies=list(data.get("dependencies", [])),
            provider=data.get("provider", ""),
            import_id=data.get("importID", ""),
            delete=data.get("delete", False),
        )


@dataclass
class StackState:
    """What `pulumi stack export` holds for one stack: its resources, in dependency order."""

    stack: str
    resources: list[Resource] = field(default_factory=list)
    provider_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    """The id of the stack's default providers (one per package), for provider references."""

    def find(self, urn: str) -> Resource | None:
        return next((r for r in self.resources if r.urn == urn), None)

    def named(self, type_: str, name: str) -> Resource:
        found = [r for r in self.resources if r.type == type_ and r.name == name]
        if len(found) != 1:
            raise KeyError(f"{len(found)} {type_} resources named {name!r}")
        return found[0]

    @property
    def outputs(self) -> dict[str, Any]:
        root = next((r for r in self.resources if r.type == ROOT_STACK_TYPE), None)
        return dict(root.outputs) if root else {}

    def to_json(self) -> dict[str, Any]:
        """JSON-serialisable; secrets are salted digests, never values."""
        return {
            "stack": self.stack,
            "providerId": self.provider_id,
            "resources": [r.to_json() for r in self.resources],
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> "StackState":
        resources = [Resource.from_json(r) for r in data.get("resources", [])]
        return StackState(data["stack"], resources, data.get("providerId") or str(uuid.uuid4()))


# --- steps and what a run returns ----------------------------------------------------------------------


@dataclass
class Step:
    op: str
    """same, create, update, replace, delete, create-replacement, delete-replaced."""
    urn: str
    type: str
    old: Resource | None = None
    new: Resource | None = None
    diffs: list[str] = field(default_factory=list)
    replaces: list[str] = field(default_factory=list)
    detailed: dict[str, str] | None = None
    """Input key -> kind (`update`, `add`, `delete`, with `-replace` for a ForceNew key)."""
    logical: bool = True
    """False for the halves of a replacement (create-replacement, delete-replaced)."""
    failed: bool = False
    provider: str = ""

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]


@dataclass
class Deployment:
    outputs: dict[str, Any]
    """The stack's exports (what `pulumi stack output` shows)."""
    digest: dict[str, Any]
    """The run's `pulumi preview --json` (pkg/display/json.go PreviewDigest)."""
    steps: list[Step]
    run: ProgramRun
    """The program's registrations (of the apply run for `up`)."""

    def changes(self) -> list[tuple[str, str, str]]:
        """(op, type, logical name) of every logical step that changes something."""
        return [(s.op, s.type, s.name) for s in self.steps if s.logical and s.op != "same" and not s.failed]


def _package_versions() -> dict[str, str]:
    versions = {}
    for package in ("vault", "aws"):
        try:
            versions[package] = metadata.version(f"pulumi_{package}")
        except metadata.PackageNotFoundError:
            versions[package] = "0.0.0"
    return versions


_VERSIONS = _package_versions()


def _delete_protected(urn: str) -> str:
    """step.go deleteProtectedError."""
    return (
        f"resource {json.dumps(urn)} cannot be deleted\n"
        "because it is protected. To unprotect the resource, either remove the `protect` flag from the "
        "resource in your Pulumi program and run `pulumi up`, or use the command:\n"
        f"`pulumi state unprotect '{urn}'`"
    )


def _replace_protected(urn: str) -> str:
    """step_generator.go: a replacement of a resource protected in the state and in the program."""
    return (
        f"unable to replace resource {json.dumps(urn)}\n"
        "as it is currently marked for protection. To unprotect the resource, remove the `protect` flag "
        "from the resource in your Pulumi program and run `pulumi up`"
    )


# --- one run of the program ----------------------------------------------------------------------------


class _Run:
    def __init__(
        self, engine: "Engine", state: StackState, config: Mapping[str, str], dry_run: bool, replace: Iterable[str]
    ) -> None:
        self.engine, self.state, self.config, self.dry_run = engine, state, config, dry_run
        self.replace = set(replace)
        self.olds = {r.urn: r for r in state.resources if not r.delete}
        self.order = {r.urn: i for i, r in enumerate(state.resources)}
        self.claimed: set[str] = set()
        self.news: list[Resource] = []
        self.replaced: list[Resource] = [r for r in state.resources if r.delete]
        """Old resources to delete at the end (create-before-delete replacements, pending deletes)."""
        self.deleted: set[str] = set()
        self.superseded: set[str] = set()
        """Old URNs whose registration succeeded (their new state replaces them)."""
        self.steps: list[Step] = []
        self.errors: list[tuple[str, str]] = []
        """(urn, message) of each error diagnostic."""
        self.failure: BaseException | None = None

    # the provider side ------------------------------------------------------------------------------

    def provider_ref(self, resource: Resource) -> str:
        """The default provider's reference `<urn>::<id>` (its id is unknown until a first deploy)."""
        if not resource.custom:
            return ""
        package = resource.type.split(":", 1)[0]
        deployed = any(r.custom for r in self.state.resources)
        provider_id = self.state.provider_id if deployed or not self.dry_run else UNKNOWN
        version = _VERSIONS.get(package, "0.0.0").replace(".", "_")
        return f"urn:pulumi:{self.state.stack}::{PROJECT}::pulumi:providers:{package}::default_{version}::{provider_id}"

    # registrations ----------------------------------------------------------------------------------

    def handle(self, registration: Registration) -> tuple[str | None, dict[str, Any]]:
        try:
            return self._step(registration)
        except BaseException as e:
            self.failure = self.failure or e
            raise

    def _claim(self, registration: Registration) -> Resource | None:
        for candidate in (registration.urn, *registration.aliases):
            old = self.olds.get(candidate)
            if old is not None and candidate not in self.claimed:
                self.claimed.add(candidate)
                return old
        return None

    def _step(self, reg: Registration) -> tuple[str | None, dict[str, Any]]:
        old = self._claim(reg)
        if reg.provider:
            raise UnknownResourceType(f"the engine implements default providers only ({reg.name} names one)")
        # Explicit providers (`pulumi:providers:*`) are unknown types here: the program uses the defaults.
        provider: Provider | None = provider_for(reg.type) if reg.custom else None
        inputs = provider.check(reg.inputs) if provider else dict(reg.inputs)
        sensitive = set(reg.secret_inputs) | (provider.sensitive if provider else set())
        new = Resource(
            urn=reg.urn,
            type=reg.type,
            custom=reg.custom,
            parent=reg.parent,
            inputs=_seal(inputs, reg.secret_inputs),
            protect=reg.protect,
            retain_on_delete=reg.retain_on_delete,
            dependencies=list(reg.dependencies),
        )
        new.provider = self.provider_ref(new)
        step = Step("create", reg.urn, reg.type, old, new, provider=new.provider)
        if old is not None:
            step.diffs = self._diff(provider, old.inputs, inputs)
            step.replaces = [k for k in step.diffs if provider and k in provider.force_new]
            step.detailed = {k: self._kind(provider, old.inputs, inputs, k) for k in step.diffs} or None
            if step.replaces or reg.urn in self.replace or old.urn in self.replace:
                step.op = "replace"
            else:
                step.op = "update" if step.diffs else "same"
        calls = None if self.dry_run or provider is None else provider
        api = self.engine.api(self.config)
        replacing, delete_first = (old if step.op == "replace" else None), bool(reg.delete_before_replace)
        if replacing is not None:
            if replacing.protect and new.protect:
                self.errors.append((reg.urn, _replace_protected(reg.urn)))
                if not self.dry_run:  # an update stops here; a preview goes on to show everything
                    raise EngineError(_replace_protected(reg.urn))
            if delete_first:
                self.steps.append(
                    Step("delete-replaced", replacing.urn, replacing.type, replacing, None, logical=False)
                )
                if calls and not replacing.retain_on_delete:
                    calls.delete(api, replacing.id, replacing.inputs, replacing.outputs)
                self.deleted.add(replacing.urn)
            self.steps.append(Step("create-replacement", reg.urn, reg.type, old, new, logical=False))

        if step.op == "same" or (calls is None and old is not None and step.op == "update"):
            assert old is not None
            new.id, outputs = old.id, {**old.outputs, **inputs}
        elif calls is None:  # a preview of a create or replace (computed outputs unknown), or a component
            new.id, outputs = ("" if self.dry_run or not reg.custom else str(uuid.uuid4())), dict(inputs)
        elif step.op == "update":
            assert old is not None
            new.id, outputs = calls.update(api, old.id, old.inputs, inputs)
        else:
            new.id, outputs = calls.create(api, inputs)
        if replacing is not None and not delete_first:
            self.replaced.append(replacing)  # deleted with the deletes, at the end
        new.outputs = _seal(outputs, sensitive)
        self.steps.append(step)
        self.news.append(new)
        if old is not None:
            self.superseded.add(old.urn)
        return (new.id or None), self._for_program(outputs, sensitive)

    @staticmethod
    def _for_program(outputs: Mapping[str, Any], sensitive: set[str]) -> dict[str, Any]:
        # The state keeps only digests of secrets; nothing the program reads back is one.
        plain = {k: UNKNOWN if isinstance(v, Sealed) else v for k, v in outputs.items()}
        return {k: prog.secret(v) if k in sensitive else v for k, v in plain.items()}

    @staticmethod
    def _diff(provider: Provider | None, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
        changed = []
        for key in sorted(set(old) | set(new)):
            if key not in new:
                # Left out of the program: Optional+Computed keeps its value, and an empty one is no change.
                if (provider and key in provider.computed) or _is_zero(old[key]):
                    continue
                changed.append(key)
            elif key not in old:
                if not _is_zero(new[key]):
                    changed.append(key)
            elif new[key] == UNKNOWN:
                changed.append(key)
            elif isinstance(old[key], Sealed):
                if not old[key].matches(new[key]):
                    changed.append(key)
            elif not (provider.same(key, old[key], new[key]) if provider else old[key] == new[key]):
                changed.append(key)
        return changed

    @staticmethod
    def _kind(provider: Provider | None, old: Mapping[str, Any], new: Mapping[str, Any], key: str) -> str:
        kind = "add" if key not in old else "delete" if key not in new else "update"
        return f"{kind}-replace" if provider and key in provider.force_new else kind

    # the end of the program -------------------------------------------------------------------------

    def finish(self, run: ProgramRun) -> None:
        """The root stack's step, then the deletes, last and in reverse order of the old state."""
        old_root = self.olds.get(run.root_urn)
        if old_root is not None:
            self.claimed.add(old_root.urn)
        root = Resource(run.root_urn, ROOT_STACK_TYPE, custom=False, outputs=dict(run.exports))
        self.steps.insert(0, Step("same" if old_root else "create", root.urn, root.type, old_root, root))
        self.news.insert(0, root)
        doomed = [r for r in self.olds.values() if r.urn not in self.claimed] + self.replaced
        for old in sorted(doomed, key=lambda r: self.order.get(r.urn, -1), reverse=True):
            if old.urn in self.deleted:
                continue
            replacing = old in self.replaced
            step = Step(
                "delete-replaced" if replacing else "delete", old.urn, old.type, old, None, logical=not replacing
            )
            step.provider = self.provider_ref(old)
            self.steps.append(step)
            if not replacing and old.protect:
                step.failed = True
                self.errors.append((old.urn, _delete_protected(old.urn)))
                if not self.dry_run:
                    raise EngineError(_delete_protected(old.urn))
                continue
            if not self.dry_run and old.custom and not old.retain_on_delete:
                provider_for(old.type).delete(self.engine.api(self.config), old.id, old.inputs, old.outputs)
            self.deleted.add(old.urn)

    def new_state(self) -> list[Resource]:
        """After the run. After a failure, what was not reached stays as it was (as in Pulumi's snapshot),
        and a replaced resource whose delete did not run stays marked for deletion."""
        kept = [
            r
            for r in self.state.resources
            if r.urn not in self.deleted and (r.urn not in self.superseded or r in self.replaced)
        ]
        for resource in kept:
            resource.delete = resource.delete or resource in self.replaced
        return self.news + kept


# --- the engine ----------------------------------------------------------------------------------------


class Engine:
    """`pulumi up` / `preview` / `import` / `state unprotect` of the real program, with real provider calls.

    Vault calls go to `vault:address` / `vault:token` from the stack's config if set (the provider's
    order), else `vault_addr` / `vault_token` (standing for `VAULT_ADDR` / `VAULT_TOKEN`). AWS calls go to
    `aws_endpoint` (moto), in `aws:region` or us-east-1.
    """

    def __init__(
        self,
        *,
        vault_addr: str = "",
        vault_token: str = "",
        aws_endpoint: str | None = None,
        program: Path = PROGRAM,
        states: Mapping[str, StackState] | None = None,
    ) -> None:
        self.vault_addr, self.vault_token, self.aws_endpoint = vault_addr, vault_token, aws_endpoint
        self.program = program
        self.states: dict[str, StackState] = dict(states or {})
        self._clients: dict[tuple[str, ...], Any] = {}

    def state(self, stack: str) -> StackState:
        return self.states.setdefault(stack, StackState(stack))

    # clients ----------------------------------------------------------------------------------------

    def api(self, config: Mapping[str, str]) -> Api:
        """Clients as the default providers configure themselves: stack config first, then the engine's
        settings (standing for VAULT_ADDR / VAULT_TOKEN)."""

        def setting(package: str, key: str, fallback: str) -> str:
            return config.get(f"{package}:{key}") or fallback

        def vault() -> hvac.Client:
            addr, token = setting("vault", "address", self.vault_addr), setting("vault", "token", self.vault_token)
            if not addr or not token:
                raise ProviderError("no Vault address or token: set VAULT_ADDR and VAULT_TOKEN")
            key = ("vault", addr, token)
            if key not in self._clients:
                self._clients[key] = hvac.Client(url=addr, token=token, timeout=10)
            return self._clients[key]

        def aws(service: str) -> Any:
            if not self.aws_endpoint:
                raise ProviderError("the engine was given no AWS endpoint (moto)")
            key = ("aws", service, setting("aws", "region", "us-east-1"))
            if key not in self._clients:
                self._clients[key] = aws_client(self.aws_endpoint, key[2], service)
            return self._clients[key]

        return Api(vault, aws)

    def program_environment(self, config: Mapping[str, str]) -> dict[str, str]:
        """What a deploy's environment gives the program itself (it asks AWS which secrets are scheduled
        for deletion before registering anything): the same AWS the engine's calls go to."""
        if not self.aws_endpoint:
            return {}
        return {
            "AWS_ENDPOINT_URL": self.aws_endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": config.get("aws:region") or "us-east-1",
        }

    # runs ----------------------------------------------------------------------------------------------

    def _run(
        self,
        stack: str,
        config: Mapping[str, object] | None,
        secret_keys: Iterable[str],
        dry_run: bool,
        replace: Iterable[str],
        use_stack_file: bool,
    ) -> tuple[_Run, ProgramRun, dict[str, str]]:
        state = self.state(stack)
        merged = prog.merged_config(stack, config, self.program.parent, use_stack_file)
        run = _Run(self, state, merged, dry_run, replace)
        try:
            with environment(self.program_environment(merged)):
                program_run = prog.run_program(
                    stack, merged, secret_keys=secret_keys, handler=run.handle, preview=dry_run, program=self.program
                )
            run.finish(program_run)
        except BaseException as e:
            failure = run.failure or e
            if not dry_run:
                state.resources = run.new_state()
            if isinstance(failure, ProviderError | EngineError):
                raise UpdateFailed(str(failure)) from None
            if isinstance(failure, pulumi.RunError):
                raise EngineError(str(failure)) from None
            raise failure from None
        return run, program_run, merged

    def preview(
        self,
        stack: str,
        config: Mapping[str, object] | None = None,
        *,
        secret_keys: Iterable[str] = (),
        replace: Iterable[str] = (),
        show_replacement_steps: bool = False,
        use_stack_file: bool = True,
    ) -> Deployment:
        """`pulumi preview --json`: nothing changes. Raises `PreviewFailed` (with the digest) on an error."""
        started = time.monotonic_ns()
        secret_keys = [prog.full_key(k) for k in secret_keys]
        run, program_run, merged = self._run(stack, config, secret_keys, True, replace, use_stack_file)
        digest = preview_digest(run, merged, set(secret_keys), time.monotonic_ns() - started, show_replacement_steps)
        if run.errors:
            raise PreviewFailed("\n".join(message for _, message in run.errors), digest)
        return Deployment(dict(program_run.exports), digest, run.steps, program_run)

    def up(
        self,
        stack: str,
        config: Mapping[str, object] | None = None,
        *,
        secret_keys: Iterable[str] = (),
        replace: Iterable[str] = (),
        show_replacement_steps: bool = False,
        use_stack_file: bool = True,
    ) -> Deployment:
        """`pulumi up --yes` (`--replace URN` for each of `replace`): preview, then apply."""
        planned = self.preview(
            stack,
            config,
            secret_keys=secret_keys,
            replace=replace,
            show_replacement_steps=show_replacement_steps,
            use_stack_file=use_stack_file,
        )
        keys = [prog.full_key(k) for k in secret_keys]
        run, program_run, _ = self._run(stack, config, keys, False, replace, use_stack_file)
        self.state(stack).resources = run.new_state()
        return Deployment(dict(program_run.exports), planned.digest, run.steps, program_run)

    # state operations ----------------------------------------------------------------------------------

    def unprotect(self, urn: str) -> None:
        """`pulumi state unprotect URN`."""
        for state in self.states.values():
            resource = state.find(urn)
            if resource is not None:
                resource.protect = False
                return
        raise EngineError(f"No such resource {json.dumps(urn)} exists in the current state")

    def import_resources(
        self,
        stack: str,
        import_file: Mapping[str, Any],
        *,
        config: Mapping[str, object] | None = None,
        protect: bool = True,
    ) -> list[Step]:
        """`pulumi import --file` (pkg/cmd/pulumi/operations/import.go, pkg/resource/deploy/import.go).

        Every resource is read first; a missing one fails the import and nothing is imported. A resource
        already in the state with the same id is skipped; components are recorded without a provider.
        Imported resources are protected unless `protect=False` (`pulumi import --protect=false`).
        """
        state = self.state(stack)
        merged = prog.merged_config(stack, config, self.program.parent)
        root_urn = prog.make_urn(stack, PROJECT, "", ROOT_STACK_TYPE, f"{PROJECT}-{stack}")
        urns: dict[str, str] = dict(import_file.get("nameTable") or {})
        found: list[Resource] = []
        for index, spec in enumerate(import_file.get("resources") or []):
            type_, name = spec["type"], spec.get("logicalName") or spec["name"]
            if spec.get("parent") and spec["parent"] not in urns:
                raise EngineError(f"the parent '{spec['parent']}' for resource {index} has no entry in 'nameTable'")
            parent = urns[spec["parent"]] if spec.get("parent") else root_urn
            urn = prog.make_urn(stack, PROJECT, parent, type_, name)
            urns[spec["name"]] = urn
            existing = state.find(urn)
            if existing is not None and (existing.import_id or existing.id) == spec.get("id", ""):
                continue
            if existing is not None:
                raise EngineError(f"resource '{urn}' already exists with a different id")
            if spec.get("component"):
                found.append(Resource(urn, type_, custom=False, parent=parent, protect=protect))
                continue
            provider = provider_for(type_)
            read = provider.read(self.api(merged), spec["id"])
            if read is None:
                raise EngineError(f"Preview failed: resource '{spec['id']}' does not exist")
            inputs, outputs = read
            sensitive = provider.sensitive & set(outputs)
            resource = Resource(urn, type_, custom=True, id=spec["id"], parent=parent, protect=protect)
            resource.inputs = _seal(provider.check(inputs), sensitive)
            resource.outputs = _seal(outputs, sensitive)
            resource.import_id = spec["id"]
            found.append(resource)
        if found and state.find(root_urn) is None:
            state.resources.insert(0, Resource(root_urn, ROOT_STACK_TYPE, custom=False))
        state.resources.extend(found)
        return [Step("import", r.urn, r.type, None, r) for r in found]


# --- `pulumi preview --json` -------------------------------------------------------------------------------


def _state_json(resource: Resource | None) -> dict[str, Any] | None:
    return None if resource is None else resource.to_json(masked=True)


def preview_digest(
    run: _Run, config: Mapping[str, str], secret_keys: set[str], duration_ns: int, show_replacement_steps: bool
) -> dict[str, Any]:
    """pkg/display/json.go PreviewDigest, as pkg/backend/display/json.go ShowPreviewDigest fills it:
    `same` steps only for the root stack or a changed `protect`; a replacement as one `replace` step
    unless `show_replacement_steps`; `changeSummary` counts every logical step that did not fail."""
    steps = []
    for step in run.steps:
        protect_changed = bool(step.old and step.new and step.old.protect != step.new.protect)
        if step.op == "same" and step.type != ROOT_STACK_TYPE and not protect_changed:
            continue
        if not step.logical and not show_replacement_steps:
            continue
        shown: dict[str, Any] = {"op": step.op, "urn": step.urn}
        if step.provider:
            shown["provider"] = step.provider
        if step.old is not None:
            shown["oldState"] = _state_json(step.old)
        if step.new is not None:
            shown["newState"] = _state_json(step.new)
        if step.diffs:
            shown["diffReasons"] = step.diffs
        if step.replaces:
            shown["replaceReasons"] = step.replaces
        shown["detailedDiff"] = (
            {k: {"kind": kind, "inputDiff": False} for k, kind in step.detailed.items()} if step.detailed else None
        )
        steps.append(shown)
    digest: dict[str, Any] = {"config": {k: SECRET_MASK if k in secret_keys else v for k, v in sorted(config.items())}}
    if steps:
        digest["steps"] = steps
    diagnostics = [
        {"urn": urn, "message": f"error: Preview failed: {message}\n", "severity": "error"}
        if "cannot be deleted" in message
        else {"urn": urn, "message": f"error: {message}\n", "severity": "error"}
        for urn, message in run.errors
    ]
    if diagnostics:
        digest["diagnostics"] = diagnostics
    digest["duration"] = duration_ns
    digest["changeSummary"] = dict(Counter(s.op for s in run.steps if s.logical and not s.failed))
    return digest


__all__ = ["PROVIDERS", "Deployment", "Engine", "EngineError", "PreviewFailed", "Resource", "StackState", "Step"]
