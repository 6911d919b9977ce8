"""The base of every JSON settings and results file: one frozen dataclass per file contract.

Each file (spectrograms.json, lists.json, dataset.json, config.json, summary.json, the records of
metrics.jsonl) has exactly one owner: a frozen dataclass deriving from :class:`JsonFile`, defined
in the module of the stage that writes it. Writers call :meth:`JsonFile.write`; every reader calls
:meth:`JsonFile.read` (or :meth:`from_json` for a record in a larger file), never ``json.loads``
and string keys. A file carries ``"format": N``; a file without one is format 1 (written before
versions existed); a newer or unknown format is a one-line error naming the file.

Fields whose type is itself a :class:`JsonFile` (or ``X | None``) are read recursively, so
dataset.json's copy of spectrograms.json is a ``SpectrogramSettings`` again.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, Self

from upcall.errors import UpcallError
from upcall.fsutil import atomic_write_text, read_json


class JsonFile:
    """Mixin for frozen dataclasses that are one JSON object on disk."""

    FORMAT: ClassVar[int] = 1  # bump when a reader of the old layout would misread the new one
    FILE: ClassVar[str] = ""  # the file name inside its folder, e.g. "dataset.json"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": self.FORMAT}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            out[f.name] = value.to_json() if isinstance(value, JsonFile) else _plain(value)
        return out

    @classmethod
    def from_json(cls, value: object, *, source: str | os.PathLike = "") -> Self:
        """The object in ``value`` (a dict read from ``source``, named in errors)."""
        where = f"{source}: " if source else ""
        if not isinstance(value, dict):
            raise UpcallError(f"{where}expected a JSON object for {cls.__name__}")
        fmt = value.get("format", 1)
        if not isinstance(fmt, int) or fmt < 1 or fmt > cls.FORMAT:
            raise UpcallError(
                f"{where}{cls.FILE or cls.__name__} format {fmt!r} is not one this upcall reads "
                f"(1 to {cls.FORMAT}); it was written by a newer upcall"
            )
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name not in value:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise UpcallError(f"{where}missing field {f.name!r}")
                continue
            kwargs[f.name] = _read_field(hints[f.name], value[f.name], source)
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as e:
            raise UpcallError(f"{where}{e}") from e

    def write(self, folder_or_file: str | os.PathLike) -> Path:
        """Write atomically; a folder gets ``FILE`` inside it. Returns the file's path."""
        path = Path(folder_or_file)
        if self.FILE and path.suffix != Path(self.FILE).suffix:
            path = path / self.FILE
        atomic_write_text(path, json.dumps(self.to_json(), indent=1) + "\n")
        return path

    @classmethod
    def read(cls, folder_or_file: str | os.PathLike) -> Self | None:
        """The file (a folder means ``FILE`` inside it); None when it does not exist."""
        path = Path(folder_or_file)
        if cls.FILE and path.suffix != Path(cls.FILE).suffix:
            path = path / cls.FILE
        value = read_json(path)
        return None if value is None else cls.from_json(value, source=path)

    @classmethod
    def require(cls, folder_or_file: str | os.PathLike, hint: str = "") -> Self:
        """Like :meth:`read`, but a missing file is an UpcallError (with ``hint``: what to run)."""
        found = cls.read(folder_or_file)
        if found is None:
            path = Path(folder_or_file)
            if cls.FILE and path.suffix != Path(cls.FILE).suffix:
                path = path / cls.FILE
            raise UpcallError(f"{path}: not found" + (f"; {hint}" if hint else ""))
        return found


def _read_field(hint: object, value: object, source: str | os.PathLike) -> object:
    for kind in _options(hint):
        if isinstance(kind, type) and issubclass(kind, JsonFile) and isinstance(value, dict):
            return kind.from_json(value, source=source)
        if kind is tuple and isinstance(value, list):
            return tuple(value)
    return value


def _options(hint: object) -> tuple:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return tuple(typing.get_origin(a) or a for a in typing.get_args(hint))
    return (typing.get_origin(hint) or hint,)


def _plain(value: object) -> object:
    """Tuples become lists and Paths strings, as a reread file has them."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value
