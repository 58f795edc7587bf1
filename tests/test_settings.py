"""`components.settings`: stack config read and validated in one place, errors naming keys only."""

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from components import manifest as manifest_mod
from components.manifest import Manifest, Secret
from components.settings import AppRoleOptions, ConfigError, Settings, load_manifest, load_settings
from components.values import load_values
from tests.harness import PROJECT, REPO, DefaultMocks, project_defaults

CANARY = "canary-9f1c2e-do-not-print"
MANIFEST = Manifest(
    services=("api", "worker"),
    secrets={
        "DB_PASSWORD": Secret("DB_PASSWORD", "db/password", ("api", "worker")),
        "API_TOKEN": Secret("API_TOKEN", "api/token", ("api",)),
    },
)


def configure(stack: str, config: dict[str, str], secret_keys: tuple[str, ...] = ()) -> None:
    pulumi.runtime.set_mocks(DefaultMocks(), project=PROJECT, stack=stack)
    pulumi.runtime.set_all_config(
        {f"{PROJECT}:{k}": v for k, v in config.items()}, secret_keys=[f"{PROJECT}:{k}" for k in secret_keys]
    )


def settings_for(stack: str, **config: str) -> Settings:
    configure(stack, config)
    return load_settings()


def test_defaults_follow_design() -> None:
    s = settings_for("staging", backend="vault")
    assert s == Settings(
        stack="staging",
        backend="vault",
        namespace="staging",
        manifest_path=Path("secrets.manifest.yaml"),
        env_file=None,
        protect=False,
        vault_mount="secret",
        vault_manage_mount=False,
        vault_approle=AppRoleOptions(),
        aws_kms_key_id=None,
        aws_recovery_window_in_days=30,
        aws_service_roles={},
    )


def test_pulumi_yaml_defaults_mean_the_same_as_unset() -> None:
    defaults = {k.split(":", 1)[1]: v for k, v in project_defaults().items()}
    assert "backend" not in defaults  # required: the CLI asks for it
    assert settings_for("staging", **defaults, backend="vault") == settings_for("staging", backend="vault")


@pytest.mark.parametrize(
    ("label", "stack", "protect", "expected"),
    [
        ("prod-auto", "prod", "", True),
        ("prod-auto-word", "prod", "auto", True),
        ("staging-auto", "staging", "auto", False),
        ("staging-forced-on", "staging", "true", True),
        ("prod-forced-off", "prod", "false", False),
    ],
)
def test_protect(label: str, stack: str, protect: str, expected: bool) -> None:
    assert settings_for(stack, backend="aws", protect=protect).protect is expected


def test_namespace_override_when_allowed() -> None:
    s = settings_for("staging-eu", backend="vault", namespace="staging", allowNamespaceOverride="true")
    assert (s.stack, s.namespace) == ("staging-eu", "staging")


@pytest.mark.parametrize("window", ["0", "7", "30"])
def test_recovery_window_accepted_outside_prod(window: str) -> None:
    assert settings_for("staging", backend="aws", awsRecoveryWindowInDays=window).aws_recovery_window_in_days == int(
        window
    )


def test_aws_options_are_read() -> None:
    kms = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    s = settings_for("prod", backend="aws", awsKmsKeyId=kms, awsServiceRoles='{"api": "api-task-role"}')
    assert (s.aws_kms_key_id, s.aws_service_roles) == (kms, {"api": "api-task-role"})


@pytest.mark.parametrize(
    ("label", "stack", "config", "message"),
    [
        ("missing-backend", "staging", {}, "secrets-migration:backend: required"),
        ("unknown-backend", "staging", {"backend": "gcp"}, "secrets-migration:backend: unknown backend"),
        ("namespace-upper", "staging", {"namespace": "Staging"}, "lower-case letters and digits"),
        ("namespace-underscore", "staging", {"namespace": "stag_ing"}, "lower-case letters and digits"),
        ("namespace-leading-dash", "staging", {"namespace": "-staging"}, "lower-case letters and digits"),
        ("namespace-not-stack", "staging", {"namespace": "prod"}, "allowNamespaceOverride"),
        ("window-1", "staging", {"awsRecoveryWindowInDays": "1"}, "must be 0 or between 7 and 30"),
        ("window-31", "staging", {"awsRecoveryWindowInDays": "31"}, "must be 0 or between 7 and 30"),
        ("window-text", "staging", {"awsRecoveryWindowInDays": "week"}, "whole number"),
        ("window-0-prod", "prod", {"awsRecoveryWindowInDays": "0"}, "not allowed in prod"),
        ("protect-bad", "staging", {"protect": "yes"}, "protect: must be true, false or auto"),
        ("manage-mount-bad", "staging", {"vaultManageMount": "1"}, "vaultManageMount: must be true or false"),
        ("mount-bad", "staging", {"vaultMount": "/secret"}, "vaultMount: mount must not start"),
        ("kms-alias", "staging", {"awsKmsKeyId": "alias/secrets"}, "awsKmsKeyId: must be a key ARN"),
        ("roles-not-map", "staging", {"awsServiceRoles": "[1]"}, "awsServiceRoles: must be a map"),
        ("roles-bad-role", "staging", {"awsServiceRoles": '{"api": "no spaces"}'}, "awsServiceRoles.api"),
        ("namespace-dash", "staging", {"namespace": "p-x", "allowNamespaceOverride": "true"}, "no '-'"),
        ("roles-reserved", "staging", {"awsServiceRoles": '{"secrets": "r"}'}, "reserved"),
    ],
)
def test_config_errors(label: str, stack: str, config: dict[str, str], message: str) -> None:
    config = {"backend": "aws", **config} if label != "missing-backend" else config
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        settings_for(stack, **config)


def test_manifest_errors_become_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "m.yaml"
    bad.write_text("version: 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="version must be 1"):
        load_manifest(settings_for("staging", backend="vault", manifest=str(bad)))


def test_service_roles_must_name_manifest_services() -> None:
    s = settings_for("staging", backend="aws", awsServiceRoles='{"billing": "billing-role"}')
    with pytest.raises(ConfigError, match="services not in the manifest: billing"):
        load_manifest(s)


def load_values_for(config: dict[str, str], secret_keys: tuple[str, ...] = ("values",)) -> None:
    configure("staging", {"backend": "vault", **config}, secret_keys)
    load_values(load_settings(), MANIFEST)


@pytest.mark.parametrize(
    ("label", "config", "secret_keys", "message"),
    [
        ("none-at-all", {}, ("values",), "no value for manifest secrets: API_TOKEN, DB_PASSWORD"),
        ("one-missing", {"values": json.dumps({"DB_PASSWORD": CANARY})}, ("values",), "secrets: API_TOKEN \\("),
        (
            "one-empty",
            {"values": json.dumps({"DB_PASSWORD": CANARY, "API_TOKEN": ""})},
            ("values",),
            "secrets: API_TOKEN \\(.*empty value counts as missing",
        ),
        ("plain-values", {"values": json.dumps({"API_TOKEN": CANARY})}, (), "pulumi config set --secret --path"),
        ("unknown-key", {"values": json.dumps({"API_TOKNE": CANARY})}, ("values",), "not in the manifest.*API_TOKNE"),
        ("not-text", {"values": '{"API_TOKEN": 12345}'}, ("values",), "must be strings: API_TOKEN"),
    ],
)
def test_value_errors_name_keys_never_values(
    label: str, config: dict[str, str], secret_keys: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_values_for(config, secret_keys)
    assert CANARY not in str(caught.value)
    assert "12345" not in str(caught.value)


def test_env_file_missing_value_is_named_with_the_file(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(f"DB_PASSWORD={CANARY}\nAPI_TOKEN=\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"secrets: API_TOKEN .*add it to {env}") as caught:
        load_values_for({"envFile": str(env)})
    assert CANARY not in str(caught.value)


def test_unreadable_env_file_is_a_config_error(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(f"DB_PASSWORD='{CANARY}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\.env:1: cannot parse") as caught:
        load_values_for({"envFile": str(env)})
    assert CANARY not in str(caught.value)


def test_empty_values_map_from_pulumi_yaml_is_not_refused_as_plain() -> None:
    env = REPO / "examples" / ".env.example"
    configure("staging", {"backend": "vault", "values": "{}", "envFile": str(env)})
    manifest = Manifest(services=(), secrets={"DATABASE_PASSWORD": Secret("DATABASE_PASSWORD", "db/pw", ())})
    values = load_values(load_settings(), manifest)
    assert list(values) == ["DATABASE_PASSWORD"]


def test_pulumi_yaml_declares_exactly_the_keys_the_program_reads() -> None:
    from components.settings import BULK_KEY, CONFIG_KEYS

    project = yaml.safe_load((REPO / "Pulumi.yaml").read_text(encoding="utf-8"))
    assert set(project["config"]) == {*CONFIG_KEYS, "values", BULK_KEY}


def test_pulumi_yaml_documents_every_key() -> None:
    project = yaml.safe_load((REPO / "Pulumi.yaml").read_text(encoding="utf-8"))
    assert project["name"] == PROJECT
    assert project["runtime"]["name"] == "python"
    for key, declaration in project["config"].items():
        assert declaration["description"], key
        # The CLI requires every declared key without a default: only `backend` is required.
        assert ("default" in declaration) == (key != "backend"), key


def test_committed_manifest_is_what_derive_writes() -> None:
    path = REPO / "secrets.manifest.yaml"
    manifest = manifest_mod.load(path)
    assert manifest_mod.dump(manifest) == path.read_text(encoding="utf-8")
    assert manifest.services == (
        "signal-service",
        "execution-gateway",
        "orchestrator",
        "market-data-service",
        "risk-manager",
    )
    assert sorted(manifest.secrets) == [
        "ALPACA_API_KEY_ID",
        "ALPACA_API_SECRET_KEY",
        "DATABASE_PASSWORD",
        "REDIS_PASSWORD",
    ]
    assert "SECRET_BACKEND" in manifest.config


# --- AppRole options ---------------------------------------------------------------------------------


def test_approle_is_on_by_default_for_vault_and_off_for_aws_or_when_disabled() -> None:
    assert settings_for("staging", backend="vault").vault_approle == AppRoleOptions()
    assert settings_for("staging", backend="aws").vault_approle is None
    assert settings_for("staging", backend="vault", vaultAppRole="false").vault_approle is None


def test_approle_options_are_read() -> None:
    s = settings_for(
        "prod",
        backend="vault",
        vaultAppRoleMount="apps",
        vaultManageAppRoleMount="true",
        vaultAppRoleTokenTtl="300",
        vaultAppRoleTokenMaxTtl="900",
        vaultAppRoleSecretIdTtl="86400",
        vaultAppRoleTokenBoundCidrs='["10.0.0.0/16", "192.168.1.7/32"]',
        vaultAppRoleSecretIdBoundCidrs="[]",
    )
    assert s.vault_approle == AppRoleOptions("apps", True, 300, 900, 86400, ("10.0.0.0/16", "192.168.1.7/32"), ())


@pytest.mark.parametrize(
    ("label", "config", "message"),
    [
        ("ttl-zero", {"vaultAppRoleTokenTtl": "0"}, "vaultAppRoleTokenTtl: must be a positive number"),
        ("max-below-ttl", {"vaultAppRoleTokenTtl": "900", "vaultAppRoleTokenMaxTtl": "300"}, "must not be shorter"),
        ("secret-id-ttl-negative", {"vaultAppRoleSecretIdTtl": "-1"}, "vaultAppRoleSecretIdTtl: must be 0"),
        ("cidr-not-list", {"vaultAppRoleTokenBoundCidrs": "10.0.0.0/8"}, "vaultAppRoleTokenBoundCidrs: must be a list"),
        ("cidr-bad", {"vaultAppRoleSecretIdBoundCidrs": '["10.0.0.0/33"]'}, r"vaultAppRoleSecretIdBoundCidrs\[0\]"),
        ("mount-bad", {"vaultAppRoleMount": "../x"}, "vaultAppRoleMount"),
    ],
)
def test_approle_config_errors(label: str, config: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_for("staging", backend="vault", **config)


def test_stack_file_config_is_what_the_cli_would_hand_the_program() -> None:
    """The migration and the demo read settings without a program: the same result as inside one."""
    from components.settings import parse_settings, stack_file_config
    from tests.harness import stack_config

    for stack in ("local", "staging", "prod"):
        pulumi.runtime.set_mocks(DefaultMocks(), project=PROJECT, stack=stack)
        pulumi.runtime.set_all_config({**project_defaults(), **stack_config(stack)})
        assert parse_settings(stack_file_config(REPO, stack), stack) == load_settings()


# --- values: the three sources and the plain-leaf refusal (issue 8 item 8) --------------------------


def test_values_precedence_by_hand_then_migrated_then_env_file(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("DB_PASSWORD=from-file\nAPI_TOKEN=from-file\n", encoding="utf-8")
    configure(
        "staging",
        {
            "backend": "vault",
            "envFile": str(env),
            "values": json.dumps({"API_TOKEN": "by-hand"}),
            "migratedValues": json.dumps({"API_TOKEN": "migrated", "DB_PASSWORD": "migrated"}),
        },
        ("values", "migratedValues"),
    )
    values = load_values(load_settings(), MANIFEST, tmp_path)
    seen: dict[str, str] = {}

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def check() -> pulumi.Output[Any]:
        return pulumi.Output.all(*values.values()).apply(lambda v: seen.update(zip(values, v, strict=True)))

    check()
    assert seen == {"API_TOKEN": "by-hand", "DB_PASSWORD": "migrated"}


def test_plain_migrated_values_are_refused() -> None:
    with pytest.raises(ConfigError, match="migratedValues: is stored in plain text") as caught:
        load_values_for({"migratedValues": json.dumps({"API_TOKEN": CANARY, "DB_PASSWORD": CANARY})}, ())
    assert CANARY not in str(caught.value)


def test_a_plain_leaf_of_values_is_refused_even_when_another_is_secret(tmp_path: Path) -> None:
    """`pulumi config set --path values.X plain` next to secret leaves: Pulumi marks the whole map secret."""
    stack_file = tmp_path / "Pulumi.staging.yaml"
    stack_file.write_text(
        yaml.safe_dump(
            {
                "config": {
                    "secrets-migration:values": {
                        "DB_PASSWORD": {"secure": "v1:abc"},
                        "API_TOKEN": CANARY,
                    }
                }
            }
        ),
        encoding="utf-8",
    )
    configure(
        "staging", {"backend": "vault", "values": json.dumps({"DB_PASSWORD": "x", "API_TOKEN": CANARY})}, ("values",)
    )
    assert pulumi.runtime.is_config_secret("secrets-migration:values")  # what the old check relied on
    with pytest.raises(ConfigError, match=r"values: stored in plain text: API_TOKEN;") as caught:
        load_values(load_settings(), MANIFEST, tmp_path)
    assert CANARY not in str(caught.value)


def test_a_values_map_secret_as_a_whole_or_leaf_by_leaf_is_accepted(tmp_path: Path) -> None:
    from components.values import plain_leaves

    whole, leaves = tmp_path / "whole.yaml", tmp_path / "leaves.yaml"
    whole.write_text(yaml.safe_dump({"config": {"secrets-migration:values": {"secure": "v1:x"}}}), encoding="utf-8")
    leaves.write_text(
        yaml.safe_dump({"config": {"secrets-migration:values": {"A": {"secure": "v1:x"}, "B": {"secure": "v1:y"}}}}),
        encoding="utf-8",
    )
    assert plain_leaves(whole) == plain_leaves(leaves) == plain_leaves(tmp_path / "absent.yaml") == []
