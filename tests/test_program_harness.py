"""The harness itself: fresh state per run, options recorded, duplicate URNs refused."""

from pathlib import Path

import pytest

from components.engine.program import ProgramError
from tests import harness
from tests.harness import run_program, unwrap

DUPLICATE_PROGRAM = """
import pulumi
import pulumi_vault as vault

class Store(pulumi.ComponentResource):
    def __init__(self, name):
        super().__init__("secrets-migration:index:VaultSecretStore", name, None, None)
        # Same child name under two instances: the same URN, which the engine refuses.
        vault.Policy("read", name=name, policy="#", opts=pulumi.ResourceOptions(parent=self))

Store("a")
Store("b")
"""


def test_duplicate_urns_fail_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    program = tmp_path / "__main__.py"
    program.write_text(DUPLICATE_PROGRAM, encoding="utf-8")
    monkeypatch.setattr(harness, "PROGRAM", program)
    with pytest.raises(ProgramError, match="Duplicate resource URN"):
        run_program("staging", use_stack_file=False)


def test_runs_do_not_share_state() -> None:
    first = run_program("local")
    second = run_program("local")
    assert len(first.resources) == len(second.resources) == 11
    assert first.exports == second.exports


def test_stack_file_and_project_defaults_are_merged_under_config() -> None:
    config = harness.project_defaults()
    assert config["secrets-migration:vaultMount"] == "secret"
    assert config["secrets-migration:values"] == "{}"
    local = harness.stack_config("local")
    assert local["secrets-migration:envFile"] == "examples/.env.example"
    # Issue 8 problem 7: no stack file pins a Vault address; deploy and verify both use VAULT_ADDR.
    for stack in ("local", "staging", "prod"):
        assert "vault:address" not in harness.stack_config(stack)
    run = run_program("local", {"namespace": "dev", "allowNamespaceOverride": True})
    assert run.exports["namespace"] == "dev"


def test_without_stack_file_only_config_counts() -> None:
    with pytest.raises(Exception, match="backend: required"):
        run_program("local", use_stack_file=False)


def test_secure_stack_values_are_refused_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="cannot decrypt"):
        harness._config_value({"secure": "AAABA..."})


def test_unwrap_reports_nested_secrets() -> None:
    sig = {harness.rpc._special_sig_key: harness.rpc._special_secret_sig, "value": "x"}
    assert unwrap({"a": [1, sig]}) == ({"a": [1, "x"]}, True)
    assert unwrap({"a": "plain"}) == ({"a": "plain"}, False)
