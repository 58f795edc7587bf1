"""The manifest model: secret-or-config, the path rule, and validation on load."""

import pytest
import yaml

from components import manifest as m
from components import strict_yaml
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
    ("not a mapping", "- a\n- b\n", 1, "expected a mapping with version, services, secrets, config"),
    ("empty file", "", 1, "expected a mapping"),
    ("wrong version", "services: []\nversion: 2\n", 2, "version must be 1"),
    ("no version", "services: []\n", 1, "version must be 1"),
    ("unknown top-level key", "version: 1\nsecretz: {}\n", 2, "unknown top-level keys: secretz"),
    ("services not a list", "version: 1\nservices: a\n", 2, "services must be a list of names"),
    ("bad service name", "version: 1\nservices:\n- ok\n- Signal\n", 4, "service 'Signal': must be lower-case"),
    ("service listed twice", "version: 1\nservices: [a, b,\n  a]\n", 3, "services lists a twice (first on line 2)"),
    ("secrets not a mapping", "version: 1\nsecrets: [A]\n", 2, "secrets must be a mapping KEY -> {path, readers}"),
    ("bad key name", "version: 1\nsecrets:\n  A: {}\n  9x: {}\n", 4, "a secrets key is not a valid env key name"),
    ("unknown entry field", "version: 1\nsecrets:\n  A_B:\n    pth: x\n", 3, "secrets.A_B: expected only path"),
    ("path with dotdot", "version: 1\nsecrets:\n  A_B:\n    path: a/../b\n", 4, "secrets.A_B: path has"),
    ("leading slash", "version: 1\nsecrets:\n  A_B: {path: /a/b}\n", 3, "must not start with '/'"),
    ("upper-case path", "version: 1\nsecrets:\n  A_B:\n    path: A/b\n", 4, "segments must match"),
    ("no path derivable", "version: 1\nsecrets:\n  _: {}\n", 3, "secrets._: cannot derive a path"),
    (
        "reader not a service",
        "version: 1\nservices: [x]\nsecrets:\n  A_B:\n    readers: [y]\n",
        5,
        "secrets.A_B: readers not in services: y",
    ),
    ("config not a list", "version: 1\nconfig: A\n", 2, "config must be a list of env key names"),
    ("bad config key", "version: 1\nconfig:\n- A\n- 9x\n", 4, "config must be a list of env key names"),
    ("key in both", "version: 1\nsecrets:\n  A_B: {}\nconfig:\n- A_B\n", 5, "in both secrets and config: A_B"),
    ("bad override", "version: 1\nconfig: [A]\noverrides:\n  A: maybe\n", 4, "overrides must map KEY -> secret"),
    (
        "shared path",
        "version: 1\nsecrets:\n  A_B: {path: x/y}\n  C_D: {path: x/y}\n",
        4,
        "secrets A_B and C_D share the path x/y (lines 3 and 4)",
    ),
    # a hand edit that repeats a key: YAML would silently keep the last one
    (
        "duplicate top-level key",
        "version: 1\nservices: [a]\nsecrets: {}\nservices: [b]\n",
        4,
        "duplicate key services (first on line 2)",
    ),
    (
        "duplicate secret",
        "version: 1\nsecrets:\n  A_B:\n    path: a/b\n  C_D: {}\n  A_B:\n    path: x/y\n",
        6,
        "duplicate key A_B (first on line 3)",
    ),
    (
        "duplicate field in a secret",
        "version: 1\nsecrets:\n  A_B:\n    path: a/b\n    path: x/y\n",
        5,
        "duplicate key path (first on line 4)",
    ),
    (
        "duplicate in flow style",
        "version: 1\noverrides: {A: secret, A: config}\n",
        2,
        "duplicate key A (first on line 2)",
    ),
]


@pytest.mark.parametrize(("label", "text", "line", "fragment"), BAD_MANIFESTS, ids=[c[0] for c in BAD_MANIFESTS])
def test_invalid_manifests_are_refused_naming_file_and_line(tmp_path, label, text, line, fragment):
    path = tmp_path / "secrets.manifest.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        m.load(path)
    assert str(err.value).startswith(f"{path}:{line}: "), (label, str(err.value))
    assert fragment in str(err.value), label


def test_a_duplicate_key_that_is_not_an_env_key_name_is_not_echoed(tmp_path):
    """A mapping key in a manifest is a name; one that is not a valid env key name may be a pasted value."""
    path = tmp_path / "secrets.manifest.yaml"
    path.write_text("version: 1\nsecrets:\n  A_B: {}\noverrides:\n  canary-7f3a: x\n  canary-7f3a: y\n")
    with pytest.raises(InputError) as err:
        m.load(path)
    assert str(err.value) == f"{path}:6: duplicate key (first on line 5)"


def test_an_explicit_path_needs_no_derivable_key(tmp_path):
    path = tmp_path / "secrets.manifest.yaml"
    path.write_text("version: 1\nsecrets:\n  _:\n    path: misc/underscore\n")
    assert m.load(path).secrets["_"].path == "misc/underscore"


def test_yaml_merge_keys_are_not_duplicates(tmp_path):
    """`<<: *anchor` then an explicit key is YAML's override, not a hand-edit mistake."""
    path = tmp_path / "secrets.manifest.yaml"
    path.write_text(
        "version: 1\nservices: [a, b]\nsecrets:\n  A_B: &common {path: a/b, readers: [a]}\n"
        "  C_D:\n    <<: *common\n    path: c/d\n"
    )
    assert m.load(path).secrets["C_D"] == m.Secret("C_D", "c/d", ("a",))


def test_the_loader_keeps_libyaml_when_pyyaml_has_it():
    """bench/manifest_load.py measures what the duplicate check costs on top of libyaml."""
    if yaml.__with_libyaml__:
        assert issubclass(strict_yaml.StrictLoader, yaml.CSafeLoader)
    else:
        assert issubclass(strict_yaml.StrictLoader, yaml.SafeLoader)


def test_plain_data_without_lines_still_names_the_source():
    with pytest.raises(InputError, match=r"^manifest: version must be 1$"):
        m.from_data({"version": 2})


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
