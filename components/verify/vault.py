"""`verify --backend vault`: read every secret back, judge every policy and AppRole role.

- Reads: a bounded pool of daemon threads over one keep-alive urllib3 connection each (requests costs
  ~0.3 ms of CPU per call, half of the client's time on loopback where it shares two cores with Vault).
- Policies: the stored text is judged rule by rule (`vault_rules`) against the text the program writes
  for the layout (`components.policies.vault_policy_hcl`). Then a second opinion that can only make the
  verdict worse: a fresh short-lived *orphan* token carrying only that policy is asked about through
  `sys/capabilities` — its own paths, the others, paths in and outside the namespace and a few system
  paths. Orphans matter: a child token inherits its parent's identity entity, whose entity and group
  policies Vault adds to every answer. If a probe token still has an entity the probes are skipped and
  the row's detail says so.
- AppRole: each service's role carries exactly its read policy (`check_roles`).

Every request runs under the run's deadline (`deadline.Deadline`): the connections are tracked so they
can be cut when it passes, and each request is named so the timeout can say which did not answer.
"""

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any, TypeVar

from components import naming
from components.layout import Layout, PolicySpot, SecretSpot
from components.policies import vault_policy_hcl
from components.verify.deadline import Deadline, call, parallel
from components.verify.options import VerifyOptions
from components.verify.report import (
    NAMESPACE_ROW,
    CannotCheck,
    Fetched,
    Findings,
    PolicyResult,
    Report,
    RoleResult,
    digest,
    listing,
    secret_result,
)
from components.verify.vault_rules import PolicyText, judge_rules, parse_policy

T = TypeVar("T")

ERROR = "VaultConnectionError"
PROBE_TOKEN_TTL = "2m"
"""Long enough for the sys/capabilities calls; revoked right after anyway."""
CAPABILITIES_CHUNK = 200
"""Paths per sys/capabilities call (OpenBao refuses JSON bodies with more than ~1,000 strings)."""
SPOT_CHECKS = 16
"""Paths probed per group (its own secrets, the others) when the text is exactly the program's."""
PROBE = "verify-probe-not-in-manifest"
"""A secret path no manifest uses: does a policy reach past the manifest's secrets?"""
OTHER_NAMESPACE = "verifyprobe"
"""A namespace that is not the one checked (another is used when checking this one)."""
REQUIRE_APPROLE = "--approle-mount MOUNT requires them"
HEALTH_CODES = {200, 429, 472, 473, 501, 503}
"""What `sys/health` answers on a Vault or OpenBao server (active, standby, DR/perf standby, not
initialised, sealed); with Vault's JSON body, the way to tell a Vault server from any other."""


def tracked_pool_classes(deadline: Deadline) -> dict[str, type]:
    """urllib3 pool classes whose connections register their socket with the deadline when they open."""
    import urllib3

    class Http(urllib3.connection.HTTPConnection):
        def connect(self) -> None:
            super().connect()
            deadline.register(self.sock)

    class Https(urllib3.connection.HTTPSConnection):
        def connect(self) -> None:
            super().connect()
            deadline.register(self.sock)

    class HttpPool(urllib3.HTTPConnectionPool):
        ConnectionCls = Http

    class HttpsPool(urllib3.HTTPSConnectionPool):
        ConnectionCls = Https

    return {"http": HttpPool, "https": HttpsPool}


def deadline_session(deadline: Deadline, pools: dict[str, type], proxy: str | None) -> Any:
    """A requests session (for hvac) whose every request is timed by the deadline on tracked sockets."""
    import requests

    class Adapter(requests.adapters.HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = pools

        def proxy_manager_for(self, *args: Any, **kwargs: Any) -> Any:
            manager = super().proxy_manager_for(*args, **kwargs)
            manager.pool_classes_by_scheme = pools
            return manager

        def send(
            self,
            request: requests.PreparedRequest,
            stream: bool = False,
            timeout: Any = None,
            verify: bool | str = True,
            cert: Any = None,
            proxies: Mapping[str, str] | None = None,
        ) -> requests.Response:
            return super().send(request, stream, deadline.timeouts(), verify, cert, proxies)

    session = requests.Session()
    session.trust_env = False  # the options say which proxy and CA; the environment was read by the CLI
    if proxy:
        session.proxies = {"http": proxy, "https": proxy}
    for scheme in ("http://", "https://"):
        session.mount(scheme, Adapter())
    return session


class VaultChecker:
    def __init__(self, options: VerifyOptions, plan: Layout, deadline: Deadline) -> None:
        import certifi
        import hvac
        import urllib3

        self.options, self.plan, self.deadline = options, plan, deadline
        self.addr = options.vault_addr.rstrip("/")
        self.workers = options.concurrency
        pools = tracked_pool_classes(deadline)
        verify = options.vault_tls_verify
        self.session = deadline_session(deadline, pools, options.vault_proxy)
        self.client = hvac.Client(url=self.addr, token=options.vault_token, session=self.session, verify=verify)
        tls: dict[str, Any] = {}
        if self.addr.startswith("https:"):
            if verify is False:
                tls = {"cert_reqs": "CERT_NONE"}
            elif isinstance(verify, str) and os.path.isdir(verify):
                tls = {"cert_reqs": "CERT_REQUIRED", "ca_cert_dir": verify}
            else:
                tls = {"cert_reqs": "CERT_REQUIRED", "ca_certs": verify if isinstance(verify, str) else certifi.where()}
        pool_args: dict[str, Any] = {
            "maxsize": self.workers,
            # Connection failures are retried; a read that times out is not (the deadline is the limit).
            "retries": urllib3.Retry(total=2, read=0, redirect=False, status=0, raise_on_status=False),
            **tls,
        }
        proxy = options.vault_proxy
        self.reads = urllib3.ProxyManager(proxy, **pool_args) if proxy else urllib3.PoolManager(**pool_args)
        self.reads.pool_classes_by_scheme = pools
        self.read_headers = {"X-Vault-Token": options.vault_token, "X-Vault-Request": "true"}
        self.key_of = {s.read_path: s.key for s in plan.secrets}

    # --- one request, under the deadline ---------------------------------------------------------

    @contextmanager
    def request(self, what: str) -> Iterator[None]:
        """A request named `what`; transport failures become one line naming it."""
        import requests
        import urllib3

        with self.deadline.doing(what):
            try:
                yield
            except (requests.Timeout, urllib3.exceptions.TimeoutError):
                raise self.deadline.timed_out(what) from None
            except (requests.RequestException, urllib3.exceptions.HTTPError):
                if self.deadline.expired:
                    raise self.deadline.timed_out(what) from None
                raise CannotCheck(f"{ERROR}: cannot reach Vault at {self.addr} ({what})") from None

    def call(self, what: str, fn: Callable[[], T]) -> T:
        with self.request(what):
            return fn()

    # --- checks ------------------------------------------------------------------------------------

    def preflight(self) -> None:
        """A Vault server, initialised, unsealed, and VAULT_TOKEN valid; otherwise CannotCheck."""
        import hvac

        with self.request("checking sys/health"):
            health = self.session.get(f"{self.addr}/v1/sys/health")
        try:
            body = health.json()
        except ValueError:
            body = None
        shaped = isinstance(body, dict) and all(isinstance(body.get(k), bool) for k in ("initialized", "sealed"))
        if health.status_code not in HEALTH_CODES or not shaped:
            raise CannotCheck(
                f"{ERROR}: {self.addr} is not a Vault server (GET /v1/sys/health answered HTTP "
                f"{health.status_code} without Vault's health fields)"
            )
        if body["sealed"]:
            raise CannotCheck(f"{ERROR}: Vault at {self.addr} is sealed (unseal it first)")
        if not body["initialized"]:
            raise CannotCheck(f"{ERROR}: Vault at {self.addr} is not initialised")
        try:
            self.call("looking up VAULT_TOKEN", self.client.auth.token.lookup_self)
        except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized):
            raise CannotCheck(f"permission denied: VAULT_TOKEN is not a valid token at {self.addr}") from None

    def fetch(self, spot: SecretSpot) -> Fetched:
        with self.request(f"reading {spot.location}"):
            response = self.reads.request(
                "GET", f"{self.addr}/v1/{spot.read_path}", headers=self.read_headers, timeout=self.read_timeout()
            )
        if response.status == 404:  # never written, deleted, or its latest version soft-deleted
            return Fetched(exists=False, problem=f"SecretNotFoundError: Secret '{spot.name}' not found in Vault")
        if response.status == 403:
            raise CannotCheck(
                f"permission denied: VAULT_TOKEN cannot read {spot.read_path} "
                f"(give it the {self.plan.policy_name(None)} policy)"
            )
        if response.status != 200:
            raise CannotCheck(f"VaultError: HTTP {response.status} reading {spot.read_path}")
        data = (json.loads(response.data).get("data") or {}).get("data") or {}
        value = data.get("value")
        if not isinstance(value, str):
            return Fetched(problem="no string field `value` (write it as value=...)")
        return Fetched(digest=digest(value))

    def read_timeout(self) -> Any:
        import urllib3

        connect, read = self.deadline.timeouts()
        return urllib3.Timeout(connect=connect, read=read)

    def fetch_many(self, spots: Sequence[SecretSpot]) -> list[Fetched]:
        return [self.fetch(s) for s in spots]

    def policy_text(self, policy: str) -> str | None:
        """The policy's HCL as stored, or None when there is no such policy."""
        import hvac

        try:
            answer = self.call(f"reading the policy {policy}", lambda: self.client.sys.read_acl_policy(policy))
        except hvac.exceptions.InvalidPath:
            return None
        except hvac.exceptions.Forbidden:
            raise CannotCheck(f"permission denied: VAULT_TOKEN cannot read the policy {policy}") from None
        return str(answer["data"]["policy"])

    def check_policy(self, service: str | None) -> PolicyResult:
        """One service's policy (None: the namespace's): every rule of its text, then the probes."""
        plan = self.plan
        spot = plan.policy_of(service)
        name = plan.policy_name(service)
        label = service or NAMESPACE_ROW
        own = [plan.secret(k) for k in spot.keys] if spot else []
        text = self.policy_text(name)
        if text is None:
            if own:
                return PolicyResult(label, name, "DENIED", "policy does not exist")
            return PolicyResult(label, name, "OK", "reads no secrets; no policy")
        written = vault_policy_hcl(plan, spot) if spot else None
        as_written = text == written
        found = Findings()
        if not as_written:  # the program's own text grants exactly its rules (tests/test_verify_rules.py)
            expected = parse_policy(written) if written else PolicyText((), ())
            found = judge_rules(parse_policy(text), expected, self.key_of)
        probes, probed, total = self.probe(name, service, own, everything=not as_written)
        found.extend(probes)
        ok = f"reads exactly its {len(own)} secret(s)"
        if as_written and probed < total:
            ok += f" (text as the program writes it; {probed} of {total} paths checked)"
        status, detail = found.verdict(ok)
        return PolicyResult(label, name, status, detail)

    # --- the second opinion: sys/capabilities of a token carrying only the policy ---------------------

    def probe_paths(self, service: str | None, own: list[SecretSpot], everything: bool) -> dict[str, frozenset[str]]:
        """Path -> the capabilities the policy should give there (empty: none)."""
        plan, mount, ns = self.plan, self.plan.mount, self.plan.namespace
        namespace_wide = service is None
        own_keys = {s.key for s in own}
        others = [s for s in plan.secrets if s.key not in own_keys]
        checked = [*own, *others] if everything else [*spot_sample(own), *spot_sample(others)]
        read, read_list, none = frozenset({"read"}), frozenset({"read", "list"}), frozenset[str]()
        paths = {s.read_path: read if namespace_wide or s.key in own_keys else none for s in checked}
        other_ns = OTHER_NAMESPACE if ns != OTHER_NAMESPACE else OTHER_NAMESPACE + "2"
        paths[naming.vault_data_path(mount, ns, PROBE)] = read if namespace_wide else none
        paths[naming.vault_data_path(mount, other_ns, PROBE)] = none
        paths[naming.vault_metadata_path(mount, ns, "")] = read_list if namespace_wide else none
        paths[naming.vault_metadata_path(mount, ns, PROBE)] = read_list if namespace_wide else none
        system = ["sys/mounts", "sys/auth", f"sys/policies/acl/{plan.policy_name(service)}", "auth/token/create"]
        if service:
            role = naming.approle_role(ns, service)
            system.append(f"auth/{self.options.approle_mount.strip('/')}/role/{role}/secret-id")
        paths.update(dict.fromkeys(system, none))
        return paths

    def probe(
        self, policy: str, service: str | None, own: list[SecretSpot], everything: bool
    ) -> tuple[Findings, int, int]:
        """(findings, manifest paths probed, manifest paths in all)."""
        expected = self.probe_paths(service, own, everything)
        probed = sum(1 for p in expected if p in self.key_of)
        found = Findings()
        token, entity = self.probe_token(policy)
        try:
            if entity:
                found.notes.append(
                    f"sys/capabilities probes skipped: the probe token belongs to identity entity {entity}, whose "
                    "entity and group policies Vault would add (the verdict rests on the policy text)"
                )
                return found, probed, len(self.plan.secrets)
            got = self.capabilities(token, list(expected))
        finally:
            self.revoke(token)
        wider: list[str] = []
        short: list[str] = []
        for path, want in expected.items():
            have = got.get(path, frozenset()) - {"deny"}
            where = self.key_of.get(path, path)
            if have - want:
                wider.append(f"{'/'.join(sorted(have - want))} on {where}")
            if want - have:
                short.append(f"{'/'.join(sorted(want - have))} on {where}")
        if wider:
            found.over.append(f"sys/capabilities also shows {listing(wider)}")
        if short:
            found.denied.append(f"sys/capabilities shows no {listing(short)}")
        return found, probed, len(self.plan.secrets)

    def probe_token(self, policy: str) -> tuple[str, str]:
        """(token, its identity entity id or "") of a fresh orphan carrying only `policy`."""
        import hvac

        try:
            created = self.call(
                f"creating a probe token for {policy}",
                lambda: self.client.auth.token.create_orphan(
                    policies=[policy], no_default_policy=True, ttl=PROBE_TOKEN_TTL, display_name="verify"
                ),
            )
        except hvac.exceptions.Forbidden:
            raise CannotCheck("permission denied: VAULT_TOKEN cannot create a probe token") from None
        except hvac.exceptions.InvalidRequest:  # Vault: child policies must be a subset of the parent's
            raise CannotCheck(
                f"permission denied: VAULT_TOKEN cannot create a token carrying {policy} "
                "(it needs sudo on auth/token/create-orphan)"
            ) from None
        auth = created["auth"]
        return str(auth["client_token"]), str(auth.get("entity_id") or "")

    def capabilities(self, token: str, paths: list[str]) -> dict[str, frozenset[str]]:
        import hvac

        found: dict[str, frozenset[str]] = {}
        # Vault refuses a request body with too many strings ("high complexity"): ask in chunks.
        for i in range(0, len(paths), CAPABILITIES_CHUNK):
            chunk = paths[i : i + CAPABILITIES_CHUNK]
            try:
                answer = self.call(
                    "asking sys/capabilities", partial(self.client.sys.get_capabilities, paths=chunk, token=token)
                )
            except hvac.exceptions.Forbidden:
                raise CannotCheck("permission denied: VAULT_TOKEN cannot use sys/capabilities") from None
            found.update({p: frozenset(answer.get(p) or answer.get("data", {}).get(p, [])) for p in chunk})
        return found

    def revoke(self, token: str) -> None:
        self.call("revoking a probe token", lambda: self.client.auth.token.revoke(token))

    # --- AppRole ------------------------------------------------------------------------------------

    def check_roles(self) -> tuple[list[RoleResult], list[str]]:
        """One row per service's AppRole role (issue 11), or a note saying why the roles were not checked."""
        import hvac

        mode, mount = self.options.approle, self.options.approle_mount.strip("/")
        if mode == "off":
            return [], ["AppRole roles not checked (--no-approle)"]
        try:
            mounts = self.call("reading sys/auth", self.client.sys.list_auth_methods)
        except hvac.exceptions.Forbidden:
            raise CannotCheck(
                "permission denied: VAULT_TOKEN cannot read sys/auth (to find the AppRole mount; or pass --no-approle)"
            ) from None
        enabled = (mounts.get("data") or mounts).get(f"{mount}/", {}).get("type") == "approle"
        services = [(s, self.plan.policy_of(s)) for s in self.plan.services]
        if not enabled:
            if mode == "required":
                return [
                    RoleResult(
                        s,
                        naming.approle_role(self.plan.namespace, s),
                        "DENIED",
                        f"no AppRole auth mount at auth/{mount}",
                    )
                    for s, spot in services
                    if spot
                ], []
            return [], [f"AppRole roles not checked: no AppRole auth mount at auth/{mount}/ ({REQUIRE_APPROLE})"]
        accessor = str(((mounts.get("data") or mounts).get(f"{mount}/") or {}).get("accessor", ""))
        names = [naming.approle_role(self.plan.namespace, s) for s in self.plan.services]
        found = parallel(lambda role: self.role(mount, accessor, role), names, 4)
        if mode == "auto" and not any(data is not None for data, _ in found):
            return [], [
                f"AppRole roles not checked: no role of namespace {self.plan.namespace} in auth/{mount}/ "
                f"({REQUIRE_APPROLE})"
            ]
        rows = [
            judge_role(service, role, spot, data, identity)
            for (service, spot), role, (data, identity) in zip(services, names, found, strict=True)
            if spot or data is not None
        ]
        return rows, []

    def role(self, mount: str, accessor: str, role: str) -> tuple[dict[str, Any] | None, list[str]]:
        """(the role's settings or None, the policies its logins also get from their identity entity)."""
        import hvac

        path = f"auth/{mount}/role/{role}"
        try:
            answer = self.call(f"reading {path}", lambda: self.client.auth.approle.read_role(role, mount_point=mount))
            role_id = self.call(
                f"reading {path}/role-id", lambda: self.client.auth.approle.read_role_id(role, mount_point=mount)
            )["data"]["role_id"]
        except hvac.exceptions.Forbidden:
            raise CannotCheck(f"permission denied: VAULT_TOKEN cannot read {path}") from None
        except hvac.exceptions.InvalidPath:
            return None, []
        return answer.get("data"), self.identity_policies(role_id, accessor)

    def identity_policies(self, role_id: str, accessor: str) -> list[str]:
        """Policies Vault adds to every login through this role: its identity entity's own and its groups'
        (AppRole logins share one entity per role, created at the first login; none before)."""
        import hvac

        identity = self.client.secrets.identity
        try:
            entity = self.call(
                "looking up the role's identity entity",
                lambda: identity.lookup_entity(alias_name=role_id, alias_mount_accessor=accessor),
            )
            if not isinstance(entity, dict):  # 204: no login yet, no entity
                return []
            data = entity["data"]
            found = [f"{p} (entity {data['id']})" for p in data.get("policies") or []]
            for group_id in sorted({*(data.get("group_ids") or []), *(data.get("inherited_group_ids") or [])}):
                group = self.call(f"reading identity group {group_id}", partial(identity.read_group, group_id))
                found += [f"{p} (group {group['data']['name']})" for p in group["data"].get("policies") or []]
        except hvac.exceptions.Forbidden:
            raise CannotCheck(
                "permission denied: VAULT_TOKEN cannot look up the AppRole logins' identity "
                "(identity/lookup/entity, identity/group/id/*; or pass --no-approle)"
            ) from None
        return found


def judge_role(
    service: str, role: str, spot: PolicySpot | None, data: dict[str, Any] | None, identity: Sequence[str] = ()
) -> RoleResult:
    """A role must log in to exactly its service's read policy: token_policies == [it], no default
    policy, a secret_id required, no legacy `policies` field, and no identity policies on its logins."""
    if data is None:
        return RoleResult(service, role, "DENIED", "role does not exist")
    if spot is None:
        return RoleResult(service, role, "OVER-GRANTED", "the service reads no secrets, yet has a login role")
    found = Findings()
    policies = data.get("token_policies") or []
    extra = sorted(set(policies) - {spot.name})
    if extra:
        found.over.append(f"token_policies also grant {listing(extra)}")
    if "policies" in data:
        found.over.append("has the legacy `policies` field (set token_policies only)")
    if data.get("token_no_default_policy") is not True:
        found.over.append("its tokens also get the default policy (token_no_default_policy is not true)")
    if data.get("bind_secret_id") is not True:
        found.over.append("logs in without a secret_id (bind_secret_id is not true)")
    if identity:
        found.over.append(f"its logins also get {listing(identity)} through their identity")
    if spot.name not in policies:
        found.denied.append(f"token_policies lack {spot.name}")
    status, detail = found.verdict(f"logs in with exactly {spot.name}")
    return RoleResult(service, role, status, detail)


def spot_sample(spots: list[SecretSpot]) -> list[SecretSpot]:
    """Up to SPOT_CHECKS spots spread evenly over the list (all of them when it is short)."""
    step = max(1, -(-len(spots) // SPOT_CHECKS))
    return spots[::step]


def vault_report(options: VerifyOptions, plan: Layout, expected: dict[str, str] | None, deadline: Deadline) -> Report:
    if not options.vault_addr:
        raise CannotCheck(f"{ERROR}: no Vault address (set VAULT_ADDR or pass --vault-addr)")
    if not options.vault_token:
        raise CannotCheck("permission denied: VAULT_TOKEN is not set (verify never takes a token as an argument)")
    checker = VaultChecker(options, plan, deadline)
    checker.preflight()
    services: list[str | None] = [*plan.services, None]
    slices = [plan.secrets[i :: checker.workers] for i in range(checker.workers) if plan.secrets[i :: checker.workers]]
    # Policies first: each is several round trips, so they finish alongside the reads.
    tasks: list[Callable[[], Any]] = [partial(checker.check_policy, s) for s in services]
    tasks += [partial(checker.fetch_many, part) for part in slices]
    tasks.append(checker.check_roles)
    done = parallel(call, tasks, checker.workers)
    policies: list[PolicyResult] = done[: len(services)]
    fetched_parts: list[list[Fetched]] = done[len(services) : len(services) + len(slices)]
    roles, notes = done[-1]
    by_key = {s.key: f for part, got in zip(slices, fetched_parts, strict=True) for s, f in zip(part, got, strict=True)}
    rows = [secret_result(s, by_key[s.key], expected) for s in plan.secrets]
    return Report("vault", plan.namespace, rows, policies, roles, notes)
