"""The server paths a client may name: only readable files under the server's data folders.

DIGITS reads whatever server path a request names (``textfile_local_*`` lists, the image lines
inside any list, classify's ``image_path`` and ``image_list``): fine for a trusted lab, but it makes
the server a file server for anyone who can log in (any name, no password). upcall accepts such a
path only when, with its symlinks resolved, it is a readable regular file under one of the folders
given with ``upcall digits serve --data-root DIR`` (default: the folder the server was started
in). A path outside them, missing, a folder or unreadable gets one and the same answer, so the
answers do not tell which server paths exist. Errors name the field and line numbers, never a
line: a list read from the server may be any file, and its text must not come back.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from upcall.digits_server.forms import FormErrors
from upcall.errors import UpcallError

NOT_READABLE = "not a readable file under the server's data folders (digits serve --data-root)"
MAX_LINE = 8192  # characters in one list line: twice Linux's PATH_MAX, room for a path and label
MAX_LIST_BYTES = 64 << 20  # a server-side list (uploads are bounded by the request limit)
_LIST_LINE = re.compile(r"(.+?)\s+(\d+)\s*$")  # DIGITS's "(.+)\s+(\d+)\s*$": PATH LABEL
_IMAGE_LINE = re.compile(r"(.+?)(?:\s+\d+)?\s*$")  # classify_many: PATH [LABEL]
_SHOWN = 5  # line numbers named in one error


class DataRoots:
    """The folders whose files clients may name (resolved once, at start)."""

    def __init__(self, roots: Iterable[str | os.PathLike]) -> None:
        resolved = []
        for root in roots:
            path = Path(root).expanduser().resolve()
            if not path.is_dir():
                raise UpcallError(f"--data-root {root}: not a folder")
            resolved.append(path)
        if not resolved:
            raise UpcallError("--data-root: give at least one folder")
        self.roots = tuple(resolved)

    def file(self, path: str | os.PathLike, base: Path | None = None) -> Path | None:
        """``path`` (relative ones joined to ``base``, else to the server's folder), resolved;
        None when it is outside the roots, missing, not a regular file or unreadable."""
        p = Path(path).expanduser()
        if base is not None and not p.is_absolute():
            p = base / p
        try:
            real = p.resolve(strict=True)  # every symlink followed: where the bytes really are
            ok = real.is_file() and os.access(real, os.R_OK)
        except (OSError, RuntimeError, ValueError):  # missing, a loop, a NUL byte
            return None
        if not ok or not any(real.is_relative_to(root) for root in self.roots):
            return None
        return real

    def read_text(self, path: str, field: str) -> tuple[str, Path]:
        """The UTF-8 text of a server-side file a form field names, and its resolved path."""
        real = self.file(path)
        if real is None:
            raise FormErrors({field: [NOT_READABLE]})
        try:
            if real.stat().st_size > MAX_LIST_BYTES:
                raise FormErrors({field: [f"larger than {MAX_LIST_BYTES >> 20} MiB"]})
            return real.read_bytes().decode("utf-8-sig"), real
        except OSError:
            raise FormErrors({field: [NOT_READABLE]}) from None
        except UnicodeDecodeError as e:
            raise FormErrors({field: [f"not UTF-8 text (byte {e.start})"]}) from None


def _lines(text: str, field: str) -> Iterable[tuple[int, str]]:
    """(number, line) of the non-blank lines; a line too long for any path is an error."""
    for n, line in enumerate(text.splitlines(), start=1):
        if len(line) > MAX_LINE:
            raise FormErrors({field: [f"line {n} is longer than {MAX_LINE} characters"]})
        if line.strip():
            yield n, line


def _refuse(field: str, numbers: list[int], what: str) -> None:
    shown = ", ".join(map(str, numbers[:_SHOWN]))
    more = f" and {len(numbers) - _SHOWN} more" if len(numbers) > _SHOWN else ""
    raise FormErrors({field: [f"line{'s' if len(numbers) > 1 else ''} {shown}{more}: {what}"]})


def image_list(text: str, roots: DataRoots, base: Path | None, field: str, *, n_labels: int) -> str:
    """A DIGITS "PATH LABEL" list with every image path resolved under the roots (relative
    paths joined to ``base``); FormErrors naming ``field`` and the lines otherwise."""
    out, malformed, unreadable, unlabelled = [], [], [], []
    for n, line in _lines(text, field):
        m = _LIST_LINE.fullmatch(line)
        if m is None:
            malformed.append(n)
        elif int(m.group(2)) >= n_labels:
            unlabelled.append(n)
        elif (real := roots.file(m.group(1).strip(), base)) is None:
            unreadable.append(n)
        else:
            out.append(f"{real} {int(m.group(2))}\n")
    if malformed:
        _refuse(field, malformed, "not a 'PATH LABEL' line")
    if unlabelled:
        _refuse(field, unlabelled, f"a label with no line in the labels file ({n_labels} labels)")
    if unreadable:
        _refuse(field, unreadable, NOT_READABLE)
    if not out:
        raise FormErrors({field: ["lists no images"]})
    return "".join(out)


def classify_paths(
    text: str, roots: DataRoots, base: Path | None, field: str, *, limit: int | None = None
) -> dict[str, Path]:
    """classify_many's list (its first ``limit`` lines): each path as written → the file."""
    found, unreadable = {}, []
    for i, (n, line) in enumerate(_lines(text, field)):
        if limit is not None and i >= limit:
            break
        name = _IMAGE_LINE.fullmatch(line).group(1).strip()
        real = roots.file(name, base)
        if real is None:
            unreadable.append(n)
        else:
            found[name] = real
    if unreadable:
        _refuse(field, unreadable, NOT_READABLE)
    return found


def dataset_lists(
    form: Mapping[str, str], uploads: Mapping[str, bytes], roots: DataRoots, local: bool
) -> dict[str, str]:
    """The dataset's labels, train and (with ``_val`` "1") val texts from uploads or server
    paths, checked: every image under the roots, every label named, every line short;
    ``{"labels": ..., ...}``. FormErrors names every field at fault (its first fault each)."""
    texts: dict[str, str] = {}
    errors: dict[str, list[str]] = {}
    n_labels = 1 << 30  # until the labels file is read: no label check
    parts = [("labels_file", "labels"), ("train_images", "train"), ("val_images", "val")]
    for part, name in parts if form.get("_val", "1") == "1" else parts[:2]:
        try:
            texts[name] = _dataset_text(form, uploads, roots, local, part, name, n_labels)
        except FormErrors as e:
            errors |= e.errors
        else:
            if name == "labels":
                n_labels = len([line for line in texts[name].splitlines() if line.strip()])
    if errors:
        raise FormErrors(errors)
    return texts


def _dataset_text(form, uploads, roots: DataRoots, local: bool, part, name, n_labels) -> str:
    if local:
        field = f"textfile_local_{part}"
        text, source = roots.read_text(form[field].strip(), field)
        base = source.parent  # DIGITS: relative paths in a list are relative to it
    else:
        field = f"textfile_{part}"
        try:
            text = uploads[field].decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise FormErrors({field: [f"not UTF-8 text (byte {e.start})"]}) from None
        base = None  # without a textfile_*_folder: relative to the server's folder
    if name == "labels":
        if not list(_lines(text, field)):  # the text is kept as sent; its lines checked short
            raise FormErrors({field: ["no labels"]})
        return text
    prefix = form.get(f"textfile_{name}_folder", "").strip()
    base = Path(prefix).expanduser() if prefix else base
    return image_list(text, roots, base, field, n_labels=n_labels)


__all__ = ["NOT_READABLE", "DataRoots", "classify_paths", "dataset_lists", "image_list"]
