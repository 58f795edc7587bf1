"""One line instead of a traceback when the CLI runs without its dependencies (e.g. `python3 -m components`
outside the virtualenv). Imports nothing from outside the standard library and the package's errors."""

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from components.errors import EXIT_BAD_INPUT

SETUP_HINT = "run `make setup` and use .venv/bin/python (or `source .venv/bin/activate`)"
OWN_PACKAGES = frozenset({"components", "policy", "scripts", "tests", "bench"})


@contextmanager
def dependency_hint() -> Iterator[None]:
    """Turn a missing third-party module into `error: missing dependency 'yaml' — ...` and exit 2.

    A missing module of this project itself is a bug, not a setup problem: its traceback is kept.
    """
    try:
        yield
    except ModuleNotFoundError as e:
        top = (e.name or "").partition(".")[0]
        if not top or top in OWN_PACKAGES:
            raise
        print(f"error: missing dependency {top!r} — {SETUP_HINT}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT) from None
