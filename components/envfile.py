"""Strict `.env` reading: python-dotenv's parser, interpolation off, every problem an error at `file:line`.

`${VAR}` stays literally `${VAR}`: values must never be pulled from the CI environment.
Errors name the file, the line and (when known) the key, and never quote the line: it may hold a value.

A line that is a value pasted on its own, not `KEY=value`, is refused too: python-dotenv reads
`c2VjcmV0LXZhbHVl==` as the key `c2VjcmV0LXZhbHVl` with the value `=`, and that "key" would be echoed
and written into the manifest. Such a line "looks like a value" when (see `_looks_like_a_value`):
- its key has a well-known credential shape (`AKIA...`, `ghp_...`, `sk_live_...`), whatever follows; or
- its value is, unquoted, nothing but `=` (base64/base32 padding: `blob==`); or
- its value is empty and unquoted, and its key looks encoded rather than named: at least 12 characters
  without `_` that mix upper- and lower-case letters (env names are UPPER_SNAKE or lower_snake; base64
  mixes cases), or at least 20 characters without `_` that mix letters and digits (hex, base32).
Real keys with empty values (`DATABASE_PASSWORD=`, `log_level=`, `myKey=`) are untouched, and
`KEY=""` always means a deliberately empty value.
"""

import io
import re
from dataclasses import dataclass
from pathlib import Path

from components.errors import InputError

KEY_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NEWLINE = re.compile(r"\r\n|\n|\r")

# Well-known credential shapes: a value like this is a secret whatever its key (manifest.classify), and
# a key like this is a pasted value.
CREDENTIAL_VALUE = re.compile(
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"  # AWS access key id
    r"|\bsk_live_[0-9A-Za-z]"  # Stripe live key
    r"|\bgh[pousr]_[0-9A-Za-z]{20,}"  # GitHub tokens
    r"|\bxox[abpr]-[0-9A-Za-z-]+"  # Slack tokens
    r"|-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"  # PEM private key
)
_QUOTED_VALUE = re.compile(r"\s*(?:export\s+)?[^=]*=\s*['\"]")


def _looks_encoded(key: str) -> bool:
    if "_" in key:
        return False
    mixed_case = key.lower() != key and key.upper() != key
    letters_and_digits = any(c.isdigit() for c in key) and any(c.isalpha() for c in key)
    return (len(key) >= 12 and mixed_case) or (len(key) >= 20 and letters_and_digits)


def _looks_like_a_value(key: str, value: str, raw_line: str) -> bool:
    """True for a binding that is a pasted value rather than KEY=value (rules in the module docstring)."""
    if CREDENTIAL_VALUE.search(key):
        return True
    if _QUOTED_VALUE.match(raw_line):  # KEY="" or KEY='=' is written on purpose
        return False
    if value and set(value) == {"="}:
        return True
    return value == "" and _looks_encoded(key)


@dataclass(frozen=True)
class EnvEntry:
    value: str
    line: int


def read_env(path: Path | str) -> dict[str, EnvEntry]:
    """Return KEY -> (value, line) in file order; raise InputError naming `file:line` on any problem."""
    # Imported here: the package's `__init__` pulls in logging, tempfile and more (~10 ms), which the
    # modules that only need this file's patterns (the manifest, `run` without --env-file) do not pay.
    from dotenv.parser import parse_stream

    path = Path(path)
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a .env file") from None
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")  # a UTF-8 BOM is accepted and dropped
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not valid UTF-8") from None

    entries: dict[str, EnvEntry] = {}
    for binding in parse_stream(io.StringIO(text)):
        # dotenv reports the line where a chunk starts, blank lines before the binding included.
        chunk = binding.original.string
        leading = chunk[: len(chunk) - len(chunk.lstrip())]
        line = binding.original.line + len(_NEWLINE.findall(leading))
        where = f"{path}:{line}"
        if binding.error:
            raise InputError(f"{where}: cannot parse this line (unterminated quote or stray characters?)")
        key = binding.key
        if key is None:  # a comment or blank line
            continue
        if not KEY_PATTERN.fullmatch(key):
            # Not echoed: a "key" that breaks the rules may be a pasted value.
            raise InputError(f"{where}: invalid key name (expected [A-Za-z_][A-Za-z0-9_]*)")
        if binding.value is None:
            raise InputError(f"{where}: line has no '=' (write KEY= for an empty value)")
        if _looks_like_a_value(key, binding.value, chunk):
            raise InputError(
                f"{where}: looks like a pasted value, not KEY=value (its name has the shape of a credential "
                'or of encoded data); remove the line, or write KEY="" if it is a real key with an empty value'
            )
        if key in entries:
            raise InputError(f"{where}: duplicate key {key} (first on line {entries[key].line})")
        entries[key] = EnvEntry(binding.value, line)
    return entries
