"""Writing outputs (issue 9.7, 9.8, 9.11): a write that fails is one line naming the file, exit 2, and leaves
nothing partial behind; an output that is an input is refused; a symlinked output stays a link.

Write failures are real where the kernel can produce them without root tricks: a missing folder, a
directory as the output, a read-only folder (a root test run first drops the capability that lets root
ignore mode bits), and a file-size limit (RLIMIT_FSIZE: EFBIG after a partial write). A full disk
(ENOSPC) is simulated: the temporary file's write is replaced by one that writes half the text and fails.
"""

import ctypes
import errno
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from components import files
from components.cli import main
from tests.conftest import REPO

ENV = "LOG_LEVEL=INFO\nDATABASE_PASSWORD=canary-db-5f1e\nGREETING='hello world'\n"
OLD = "# the template from last time\n"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(ENV)
    return tmp_path


def snapshot(folder: Path) -> dict[str, bytes | str]:
    """Every entry under `folder`: file contents, link targets, and folders."""
    found: dict[str, bytes | str] = {}
    for p in sorted(folder.rglob("*")):
        name = str(p.relative_to(folder))
        if p.is_symlink():
            found[name] = f"-> {os.readlink(p)}"
        elif p.is_dir():
            found[name] = "<dir>"
        else:
            found[name] = p.read_bytes()
    return found


def one_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1, err
    assert "canary" not in err
    return err.rstrip("\n")


# --- write failures --------------------------------------------------------------------------------------


def test_output_in_a_missing_folder(workdir, capsys):
    before = snapshot(workdir)
    line = one_error(capsys, ["template", "--env-file", ".env", "--out", "missing-dir/t"])
    assert line == "error: missing-dir/t: cannot write (No such file or directory)"
    assert snapshot(workdir) == before


def test_output_that_is_a_directory(workdir, capsys):
    (workdir / "folder").mkdir()
    (workdir / "folder" / "keep").write_text("x")
    before = snapshot(workdir)
    line = one_error(capsys, ["template", "--env-file", ".env", "--out", "folder"])
    assert line == "error: folder: cannot write (Is a directory)"
    assert snapshot(workdir) == before


def test_manifest_that_is_a_directory(workdir, capsys):
    (workdir / "secrets.manifest.yaml").mkdir()
    before = snapshot(workdir)
    line = one_error(capsys, ["derive", "--env-file", ".env"])
    assert line.startswith("error: secrets.manifest.yaml: ")
    assert snapshot(workdir) == before


def test_full_disk_leaves_the_old_file_and_no_temporary_file(workdir, capsys, monkeypatch):
    """Simulated ENOSPC: the temporary file gets half the text, then the write fails."""
    (workdir / ".env.template").write_text(OLD)
    before = snapshot(workdir)
    real_fdopen = os.fdopen
    partial: list[str] = []

    class FullDisk:
        def __init__(self, fd: int, *args: object, **kwargs: object) -> None:
            self.file = real_fdopen(fd, *args, **kwargs)  # type: ignore[call-overload]

        def __enter__(self) -> "FullDisk":
            return self

        def __exit__(self, *exc: object) -> None:
            self.file.close()

        def write(self, data: bytes) -> int:
            self.file.write(data[: len(data) // 2])
            self.file.flush()
            partial.extend(p.name for p in workdir.iterdir() if p.name.endswith(".tmp"))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fdopen", FullDisk)
    line = one_error(capsys, ["template", "--env-file", ".env"])
    assert line == "error: .env.template: cannot write (No space left on device)"
    assert partial, "the simulated disk filled up while the temporary file was being written"
    assert snapshot(workdir) == before  # old template intact, temporary file gone


def test_file_size_limit_is_a_real_partial_write(workdir):
    """RLIMIT_FSIZE makes the kernel stop the write part-way (EFBIG): a real failure, no root needed."""
    (workdir / ".env.template").write_text(OLD)
    before = snapshot(workdir)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))

    result = subprocess.run(
        [sys.executable, "-m", "components", "template", "--env-file", ".env"],
        cwd=workdir,
        env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"},
        preexec_fn=limit,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "error: .env.template: cannot write (File too large)\n"
    assert snapshot(workdir) == before


def _without_root_override() -> None:
    """In the child: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the capability bounding set, so
    that a root test run obeys the folder's mode bits like any user (nothing is gained, only lost)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody may write to, holding a .env and an old template."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    (folder / ".env").write_text(ENV)
    (folder / ".env.template").write_text(OLD)
    folder.chmod(0o555)
    try:
        yield folder
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize(
    ("argv", "target"),
    [
        (["template", "--env-file", ".env"], ".env.template"),
        (["derive", "--env-file", ".env"], "secrets.manifest.yaml"),
    ],
    ids=["template", "derive"],
)
def test_read_only_folder(read_only_folder, argv, target):
    """A real permission error from the kernel (as root, with the capability to ignore mode bits dropped)."""
    before = snapshot(read_only_folder)
    result = subprocess.run(
        [sys.executable, "-m", "components", *argv],
        cwd=read_only_folder,
        env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"},
        preexec_fn=_without_root_override if os.geteuid() == 0 else None,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"error: {target}: cannot write (Permission denied)\n"
    assert snapshot(read_only_folder) == before


# --- an output that is an input ---------------------------------------------------------------------


@pytest.mark.parametrize("how", ["same name", "absolute path", "symlink", "hard link"])
def test_template_never_overwrites_its_env_file(workdir, capsys, how):
    out = {"same name": ".env", "absolute path": str(workdir / ".env"), "symlink": "link.env", "hard link": "hard.env"}[
        how
    ]
    if how == "symlink":
        (workdir / "link.env").symlink_to(".env")
    if how == "hard link":
        os.link(workdir / ".env", workdir / "hard.env")
    before = snapshot(workdir)
    line = one_error(capsys, ["template", "--env-file", ".env", "--out", out])
    assert line == f"error: {out}: is the input .env file (.env); choose another output"
    assert snapshot(workdir) == before


def test_template_never_overwrites_its_manifest(workdir, capsys):
    assert main(["derive", "--env-file", ".env"]) == 0
    capsys.readouterr()
    before = snapshot(workdir)
    line = one_error(capsys, ["template", "--env-file", ".env", "--out", "secrets.manifest.yaml"])
    assert line == "error: secrets.manifest.yaml: is the input manifest (secrets.manifest.yaml); choose another output"
    assert snapshot(workdir) == before


def test_derive_never_writes_the_manifest_over_the_env_file(workdir, capsys):
    before = snapshot(workdir)
    line = one_error(capsys, ["derive", "--env-file", ".env", "--manifest", ".env"])
    assert line == "error: .env: is the input .env file (.env); choose another manifest"
    assert snapshot(workdir) == before


# --- links ----------------------------------------------------------------------------------------------


def test_a_symlinked_output_stays_a_link_and_its_target_is_updated(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "out.txt"
    target.write_text("old\n")
    target.chmod(0o640)
    link = tmp_path / "out.txt"
    link.symlink_to(Path("real") / "out.txt")
    files.write_atomic(link, "new\n")
    assert link.is_symlink() and os.readlink(link) == str(Path("real") / "out.txt")
    assert target.read_text() == "new\n"
    assert target.stat().st_mode & 0o777 == 0o640  # the target keeps its permissions
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["out.txt"]
