"""The manifest model: secret-or-config, the path rule, and validation on load."""

import pytest
import yaml

from components import manifest as m
from components.errors import InputError

RUNBOOK_SECRETS = [
    ("ALPACA_API_KEY_ID", "PKFAKE0000", "alpaca/api_key_id"),
    ("ALPACA_API_SECRET_KEY", "fake-secret", "alpaca/api_secret_key"),
    ("DATABASE_PASSWORD", "fake-pw", "database/password"),
    ("REDIS_PASSWORD", "fake-redis", "redis/password"),
]
RUNBOOK_CONFIG = [
    ("ALPACA_BASE_URL", "https://paper-api.alpaca.markets/v2"),
    ("DATABASE_HOST", "localhost"),
    ("DATABASE_PORT", "5432"),
    ("DATABASE_NAME", "trader"),
    ("DATABASE_USER", "trader"),
    ("REDIS_URL", "redis://localhost:6379/0"),
    ("DRY_RUN", "true"),
    ("LOG_LEVEL", "INFO"),
    ("STRATEGY_ID", "alpha_baseline"),
]


@pytest.mark.parametrize(("key", "value", "path"), RUNBOOK_SECRETS, ids=[c[0] for c in RUNBOOK_SECRETS])
def test_runbook_secrets_and_their_paths(key, value, path):
    assert m.classify(key, value) == "secret"
    assert m.default_path(key) == path


@pytest.mark.parametrize(("key", "value"), RUNBOOK_CONFIG, ids=[c[0] for c in RUNBOOK_CONFIG])
def test_runbook_config_stays_config(key, value):
    assert m.classify(key, value) == "config"


CLASSIFY = [
    ("redis url with password", "REDIS_URL", "redis://:pw@localhost:6379/0", "secret"),
    ("postgres url with user and password", "DB_URL", "postgres://u:pw@h/db", "secret"),
    ("url with user but no password", "DB_URL", "postgres://u@h/db", "config"),
    ("aws key id under an innocent name", "UPLOAD_ID", "AKIAIOSFODNN7EXAMPLE", "secret"),
    ("stripe live key", "PAYMENTS", "sk_live_abc123", "secret"),
    ("github token", "BOT", "ghp_" + "a1" * 18, "secret"),
    ("slack bot token", "CHAT", "xoxb-123-456-abc", "secret"),
    ("pem private key", "TLS", "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----", "secret"),
    ("token suffix", "GITHUB_TOKEN", "x", "secret"),
    ("lower-case key", "github_token", "x", "secret"),
    ("credentials suffix", "GCP_CREDENTIALS", "x", "secret"),
    ("apikey suffix", "MAPS_APIKEY", "x", "secret"),
    ("pwd suffix", "SMTP_PWD", "x", "secret"),
    ("key_id suffix", "AWS_ACCESS_KEY_ID", "x", "secret"),
    ("starts with SECRET", "SECRET_BACKEND", "vault", "config"),
    ("starts with PASSWORD", "PASSWORD_MIN_LENGTH", "12", "config"),
    ("KEY inside a word", "MONKEY_COUNT", "3", "config"),
    ("url with a bad port", "ODD_URL", "http://h:notaport/x", "config"),
]


@pytest.mark.parametrize(("label", "key", "value", "expected"), CLASSIFY, ids=[c[0] for c in CLASSIFY])
def test_classify(label, key, value, expected):
    assert m.classify(key, value) == expected, label


@pytest.mark.parametrize(
    ("key", "path"),
    [("TOKEN", "token"), ("GITHUB_TOKEN", "github/token"), ("A__B_C", "a/b_c"), ("_LEADING_X", "leading/x")],
)
def test_path_rule(key, path):
    assert m.default_path(key) == path


BAD_MANIFESTS = [
    ("wrong version", {"version": 2}, "version must be 1"),
    ("unknown top-level key", {"version": 1, "secretz": {}}, "unknown top-level keys: secretz"),
    ("bad service name", {"version": 1, "services": ["Signal"]}, "service name 'Signal'"),
    ("path with dotdot", {"version": 1, "secrets": {"A_B": {"path": "a/../b"}}}, "secrets.A_B: path has"),
    ("leading slash", {"version": 1, "secrets": {"A_B": {"path": "/a/b"}}}, "must not start with '/'"),
    ("upper-case path", {"version": 1, "secrets": {"A_B": {"path": "A/b"}}}, "segments must match"),
    (
        "reader not a service",
        {"version": 1, "services": ["x"], "secrets": {"A_B": {"readers": ["y"]}}},
        "readers not in services: y",
    ),
    (
        "key in both",
        {"version": 1, "secrets": {"A_B": {}}, "config": ["A_B"]},
        "in both secrets and config: A_B",
    ),
    (
        "shared path",
        {"version": 1, "secrets": {"A_B": {"path": "x/y"}, "C_D": {"path": "x/y"}}},
        "secrets A_B and C_D share the path x/y",
    ),
]


@pytest.mark.parametrize(("label", "data", "fragment"), BAD_MANIFESTS, ids=[c[0] for c in BAD_MANIFESTS])
def test_invalid_manifests_are_refused_with_file_and_key(tmp_path, label, data, fragment):
    path = tmp_path / "secrets.manifest.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError) as err:
        m.load(path)
    assert str(err.value).startswith(f"{path}: "), label
    assert fragment in str(err.value)


def test_yaml_errors_name_the_line(tmp_path):
    path = tmp_path / "secrets.manifest.yaml"
    path.write_text("version: 1\nsecrets:\n  A: [unclosed\n")
    with pytest.raises(InputError, match=rf"^{path}:\d+: not valid YAML"):
        m.load(path)


def test_defaults_fill_path_and_readers():
    loaded = m.from_data({"version": 1, "services": ["a", "b"], "secrets": {"DB_PASSWORD": None}})
    assert loaded.secrets["DB_PASSWORD"] == m.Secret("DB_PASSWORD", "db/password", ("a", "b"))


def test_dump_round_trips_and_is_stable(tmp_path):
    manifest = m.Manifest(
        services=("signal-service", "orchestrator"),
        secrets={
            "Z_TOKEN": m.Secret("Z_TOKEN", "z/token", ("orchestrator",)),
            "A_PASSWORD": m.Secret("A_PASSWORD", "a/password", ("signal-service", "orchestrator")),
        },
        config=("LOG_LEVEL", "DRY_RUN"),
        overrides={"LOG_LEVEL": "config"},
    )
    text = m.dump(manifest)
    path = tmp_path / "m.yaml"
    path.write_text(text)
    assert m.load(path) == m.Manifest(manifest.services, manifest.secrets, ("DRY_RUN", "LOG_LEVEL"), manifest.overrides)
    assert m.dump(m.load(path)) == text
    assert text.index("A_PASSWORD") < text.index("Z_TOKEN")  # keys sorted


def test_readers_of_lists_a_services_secrets():
    manifest = m.from_data(
        {
            "version": 1,
            "services": ["a", "b"],
            "secrets": {"X_KEY": {"readers": ["a"]}, "Y_KEY": {"readers": ["a", "b"]}},
        }
    )
    assert [s.key for s in manifest.readers_of("a")] == ["X_KEY", "Y_KEY"]
    assert [s.key for s in manifest.readers_of("b")] == ["Y_KEY"]
