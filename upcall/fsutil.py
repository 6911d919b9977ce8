"""Atomic file and directory writes (nothing half-written ever appears under a final name), the
marks that let a command replace only folders upcall made, and the one reader of our JSON
settings files."""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import io
import json
import os
import re
import shutil
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from upcall.errors import UpcallError


def temp_sibling(final: Path) -> Path:
    # Same directory (so the rename is atomic), hidden, unique per process, and it keeps the
    # final suffix so tools that infer a format from the name still work.
    return final.with_name(f".{final.name}.{os.getpid()}.tmp{final.suffix}")


# What temp_sibling and atomic_dir's set-aside old version are called: (name, pid, rest)
_LEFTOVER = re.compile(r"\.(.+)\.(\d+)\.(tmp.*|old)")
_swept: set[Path] = set()  # folders this process has swept (each worker sweeps for itself)


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (someone else's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def sweep_leftovers(folder: Path) -> None:
    """Remove the temporaries that killed processes left in ``folder`` (once per process).

    A temporary's name holds its writer's pid; one whose process no longer exists can never be
    finished, so it goes. An old version that atomic_dir set aside just before a kill is put
    back when nothing replaced it. A writer on another machine (a shared file system) or in
    another pid namespace looks dead from here: don't share an output folder across those.
    """
    folder = Path(folder)
    if folder in _swept:
        return
    _swept.add(folder)  # first, so a folder that cannot be listed is not retried per file
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        m = _LEFTOVER.fullmatch(entry.name)
        if m is None or pid_alive(int(m.group(2))):
            continue
        name, rest = m.group(1), m.group(3)
        if rest != "old" and rest != "tmp" + Path(name).suffix:
            continue  # not a name we make
        path = Path(entry.path)
        with contextlib.suppress(OSError):
            if rest == "old" and not (folder / name).exists():
                os.replace(path, folder / name)
            elif entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()


# Errors of writing that carry no file name (a full disk found at close, a failing device)
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO}


def _name_final(e: OSError, tmp: Path, final: Path) -> None:
    """Make an error about the temporary, or a nameless write error, name the final path."""
    name = os.fsdecode(e.filename) if isinstance(e.filename, (str, os.PathLike)) else None
    if name is None and e.errno in _WRITE_ERRNOS:
        e.filename = str(final)
    elif name == str(tmp) or (name and name.startswith(f"{tmp}{os.sep}")):
        e.filename = str(final) + name[len(str(tmp)) :]


def make_folder(folder: Path) -> None:
    """``mkdir -p``, where a symlink loop or a dangling link says so (mkdir says "File exists")."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        os.stat(folder)  # raises the real reason: ELOOP, ENOENT for a dangling link
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder)) from None


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it onto ``final`` only if the block succeeds.

    An OSError about the temporary names ``final``, the file the user asked for.
    """
    final = Path(final)
    make_folder(final.parent)
    sweep_leftovers(final.parent)
    tmp = temp_sibling(final)
    try:
        yield tmp
        os.replace(tmp, final)
    except OSError as e:
        _name_final(e, tmp, final)
        raise
    finally:
        # OSError, not only FileNotFoundError: on a read-only disk unlinking a temporary that was
        # never made fails with EROFS, which would hide the error being raised
        with contextlib.suppress(OSError):
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def atomic_dir(
    final: str | os.PathLike,
    *,
    kind: str | None = None,
    legacy: Sequence[str] = (),
    inputs: Sequence[str | os.PathLike] = (),
) -> Iterator[Path]:
    """Yield a fresh temporary directory; on success it replaces ``final`` (an old one is removed).

    With ``kind`` (the command's name), an existing ``final`` must be ours to replace (see
    :func:`check_own_dir`, checked before the block runs) and the new folder is marked as made
    by that command.
    """
    final = Path(final)
    if kind is not None:
        check_own_dir(final, kind=kind, legacy=legacy, inputs=inputs)
    make_folder(final.parent)
    sweep_leftovers(final.parent)
    tmp = temp_sibling(final)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        if kind is not None:
            mark_own_dir(tmp, kind)
        yield tmp
        if final.exists():
            old = final.with_name(f".{final.name}.{os.getpid()}.old")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except OSError as e:
        _name_final(e, tmp, final)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def why_unreadable(path: str | os.PathLike) -> str | None:
    """The OS's reason ``path`` cannot be opened for reading (permission denied, a symlink loop),
    or None: libsndfile, given a path, reports all of these as "System error"."""
    try:
        with open(path, "rb"):
            return None
    except OSError as e:
        return e.strerror or str(e)


# Every folder a command makes as a whole (a dataset, a job, a data set) holds this file, naming
# the command; --force, --restart and every replacement touch only a folder so marked.
OWN_MARK = ".upcall-made"


def mark_own_dir(folder: str | os.PathLike, kind: str) -> None:
    """Record that ``upcall kind`` made ``folder`` (created if missing)."""
    folder = Path(folder)
    make_folder(folder)
    if (folder / OWN_MARK).is_file():
        return
    atomic_write_text(folder / OWN_MARK, f"{kind}\n")


def _made_by(folder: Path) -> str | None:
    try:
        return (folder / OWN_MARK).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise UpcallError(f"{folder / OWN_MARK}: cannot read: {getattr(e, 'strerror', e)}") from e


def check_own_dir(
    folder: str | os.PathLike,
    *,
    kind: str,
    legacy: Sequence[str] = (),
    inputs: Sequence[str | os.PathLike] = (),
) -> None:
    """UpcallError unless ``upcall kind`` may delete or replace ``folder``.

    It may when ``folder`` does not exist, is empty, or was made by the same command: its mark
    says so, or (made before marks existed) it holds one of the ``legacy`` files, the manifest
    that command writes. Never when ``folder`` is, or holds, one of ``inputs`` (the files and
    folders this run reads), after symlinks.
    """
    folder = Path(folder)
    real = Path(os.path.realpath(folder))  # Path.resolve raises RuntimeError on a symlink loop
    for given in inputs:
        path = Path(os.path.realpath(given))
        if path == real or real in path.parents:
            what = "is" if path == real else f"holds {path},"
            raise UpcallError(f"{folder}: {what} an input of this command; refusing to replace it")
    if not os.path.lexists(folder):
        return
    if not folder.is_dir():
        raise UpcallError(f"{folder}: not a folder; refusing to replace it")
    made = _made_by(folder)
    if made == kind or (made is None and any((folder / n).exists() for n in legacy)):
        return
    if made is not None:
        raise UpcallError(
            f"{folder}: made by upcall {made}, not by upcall {kind}; refusing to replace it"
        )
    if any(folder.iterdir()):
        raise UpcallError(
            f"{folder}: not a folder made by upcall {kind} (it has no {OWN_MARK}); refusing to "
            "replace it: choose another folder, or empty it yourself"
        )


def read_json(path: str | os.PathLike) -> dict | None:
    """The JSON object in one of our settings files; None when the file does not exist.

    Unreadable, undecodable or non-object content is an UpcallError naming the file.
    """
    path = Path(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except OSError as e:
        raise UpcallError(f"{path}: cannot read: {e.strerror or e}") from e
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UpcallError(f"{path}: not valid JSON: {e}") from e
    if not isinstance(value, dict):
        raise UpcallError(f"{path}: expected a JSON object, found {type(value).__name__}")
    return value


def atomic_write_csv(path: str | os.PathLike, rows: Iterable[Sequence[object]]) -> None:
    """``rows`` (the header first) as a CSV file at ``path``, written atomically (``\n`` line
    ends; csv's quoting where a cell needs it)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    atomic_write_text(path, buf.getvalue())


def read_csv_rows(path: str | os.PathLike, *, missing_ok: bool = False) -> list[list[str]] | None:
    """Every row of a UTF-8 CSV file (a spreadsheet's byte-order mark dropped, so it is not part
    of the header's first name); with ``missing_ok`` None when the file does not exist.
    Unreadable, undecodable or malformed content is an UpcallError naming the file."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return list(csv.reader(f))
    except FileNotFoundError as e:
        if missing_ok:
            return None
        raise UpcallError(f"{path}: cannot read: {e.strerror or e}") from e
    except OSError as e:
        raise UpcallError(f"{path}: cannot read: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise UpcallError(f"{path}: not UTF-8 text (byte {e.start})") from e
    except csv.Error as e:
        raise UpcallError(f"{path}: not a valid CSV file: {e}") from e


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1-MiB pieces (a model or list may be large);
    an OSError is the caller's to report."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while piece := f.read(1 << 20):
            h.update(piece)
    return h.hexdigest()
