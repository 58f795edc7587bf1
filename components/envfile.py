"""Strict `.env` reading: python-dotenv's parser, interpolation off, every problem an error at `file:line`.

`${VAR}` stays literally `${VAR}`: values must never be pulled from the CI environment.
Errors name the file, the line and (when known) the key, and never quote the line: it may hold a value.
"""

import io
import re
from dataclasses import dataclass
from pathlib import Path

from dotenv.parser import parse_stream

from components.errors import InputError

KEY_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NEWLINE = re.compile(r"\r\n|\n|\r")


@dataclass(frozen=True)
class EnvEntry:
    value: str
    line: int


def read_env(path: Path | str) -> dict[str, EnvEntry]:
    """Return KEY -> (value, line) in file order; raise InputError naming `file:line` on any problem."""
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
        if key in entries:
            raise InputError(f"{where}: duplicate key {key} (first on line {entries[key].line})")
        if binding.value is None:
            raise InputError(f"{where}: line has no '=' (write KEY= for an empty value)")
        entries[key] = EnvEntry(binding.value, line)
    return entries
