"""Writing files: all or nothing, one clear line when it fails, never over an input, never racing another
writer. Every file the CLI writes goes through here."""

import contextlib
import fcntl
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from components.errors import InputError


def cannot_write(path: Path, error: OSError) -> InputError:
    """`FILE: cannot write (Permission denied)`: the file as the user named it and the system's reason."""
    return InputError(f"{path}: cannot write ({error.strerror or error.__class__.__name__})")


def _target(path: Path) -> Path:
    """The file a write to `path` must change: through symlinks, so a link stays a link."""
    return Path(os.path.realpath(path))


def _mode_for(path: Path) -> int:
    """Keep an existing file's permissions; a new file gets the usual 0666 minus the umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` via a synced temp file in the same folder and a rename: all or nothing.

    Any OSError (missing folder, a directory, no permission, disk full, file too large) becomes an
    InputError naming `path`; the temp file is removed and the old file, if any, is untouched.
    """
    path = Path(path)
    target = _target(path)
    data = text.encode("utf-8")
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as e:
        raise cannot_write(path, e) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the rename must never publish a file whose blocks are not on disk
        os.chmod(tmp, _mode_for(target))
        os.replace(tmp, target)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise cannot_write(path, e) from None
        raise


def refuse_input_as_output(output: Path, what: str, inputs: dict[str, Path | None]) -> None:
    """InputError when `output` is one of `inputs` (label -> path) under any name: same path, a symlink or a
    hard link all count (same device and inode). `what` names the output in the advice (`output`)."""
    for label, source in inputs.items():
        if source is None:
            continue
        try:
            same = os.path.samefile(output, source)
        except OSError:  # one of them does not exist (yet): they cannot be the same file
            continue
        if same:
            raise InputError(f"{output}: is the input {label} ({source}); choose another {what}")


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock for a read-modify-write of `path`, so that concurrent writers (two `derive`
    runs) take turns instead of one silently undoing the other.

    The lock is an `flock` on `.NAME.lock` beside the real file (a symlink's target, so every name of the
    file shares one lock). The holder removes the lock file when done, so nothing is left behind; a
    waiter that then gets the lock on the removed file sees that the name now points elsewhere (or
    nowhere) and starts over, so two processes never both hold "the" lock.
    """
    path = Path(path)
    target = _target(path)
    lock = target.parent / f".{target.name}.lock"
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise cannot_write(path, e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting: another process is changing {path}", file=sys.stderr)
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            current = os.stat(lock).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(fd).st_ino:
            break
        os.close(fd)  # we locked a lock file its holder has removed: try again with the current one
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)  # while still holding it: see the docstring
        os.close(fd)  # closing the descriptor releases the lock
