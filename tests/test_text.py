"""Counted nouns in messages: `1 secret`, `2 secrets`, `1 Vault policy`, `3 Vault policies`."""

import pytest

from components.text import plural


@pytest.mark.parametrize(
    ("n", "noun", "expected"),
    [
        (0, "secret", "0 secrets"),
        (1, "secret", "1 secret"),
        (2, "config key", "2 config keys"),
        (1, "Vault policy", "1 Vault policy"),
        (3, "Vault policy", "3 Vault policies"),
        (2, "IAM policy", "2 IAM policies"),
        (2, "unexpected argument", "2 unexpected arguments"),
    ],
)
def test_plural(n, noun, expected):
    assert plural(n, noun) == expected
