"""Wording shared by the commands' messages."""

_VOWELS = frozenset("aeiou")


def plural(n: int, noun: str) -> str:
    """`1 secret`, `2 secrets`; `1 config key`, `2 config keys`; `1 Vault policy`, `3 Vault policies`."""
    if n == 1:
        return f"{n} {noun}"
    if noun.endswith("y") and noun[-2:-1] not in _VOWELS:
        return f"{n} {noun[:-1]}ies"
    return f"{n} {noun}s"
