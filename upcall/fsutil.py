"""Atomic file and directory writes (nothing half-written ever appears under a final name), and
the one reader of our JSON settings files."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from upcall.errors import UpcallError


def temp_sibling(final: Path) -> Path:
    # Same directory (so the rename is atomic), hidden, unique per process, and it keeps the
    # final suffix so tools that infer a format from the name still work.
    return final.with_name(f".{final.name}.{os.getpid()}.tmp{final.suffix}")


# What temp_sibling and atomic_dir's set-aside old version are called: (name, pid, rest)
_LEFTOVER = re.compile(r"\.(.+)\.(\d+)\.(tmp.*|old)")
_swept: set[Path] = set()  # folders this process (or its parent, before forking) has swept


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
    name = e.filename if isinstance(e.filename, str) else None
    if name is None and e.errno in _WRITE_ERRNOS:
        e.filename = str(final)
    elif name == str(tmp) or (name and name.startswith(f"{tmp}{os.sep}")):
        e.filename = str(final) + name[len(str(tmp)) :]


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it onto ``final`` only if the block succeeds.

    An OSError about the temporary names ``final``, the file the user asked for.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep_leftovers(final.parent)
    tmp = temp_sibling(final)
    try:
        yield tmp
        os.replace(tmp, final)
    except OSError as e:
        _name_final(e, tmp, final)
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary directory; on success it replaces ``final`` (an old one is removed)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep_leftovers(final.parent)
    tmp = temp_sibling(final)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
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
