"""The base of every JSON settings and results file: one frozen dataclass per file contract.

Each file (spectrograms.json, lists.json, dataset.json, config.json, summary.json, the records of
metrics.jsonl) has exactly one owner: a frozen dataclass deriving from :class:`JsonFile`, defined
in the module of the stage that writes it. Writers call :meth:`JsonFile.write`; every reader calls
:meth:`JsonFile.read` (or :meth:`from_json` for a record in a larger file), never ``json.loads``
and string keys. A file carries ``"format": N``; a file without one is format 1 (written before
versions existed); a newer or unknown format is a one-line error naming the file.

Fields whose type is itself a :class:`JsonFile` (or ``X | None``) are read recursively, so
dataset.json's copy of spectrograms.json is a ``SpectrogramSettings`` again; a plain dataclass
field is a nested object without a format of its own. A field declared with
``metadata=INLINE`` is spread over the top level of the object: a dataclass's fields are its own
keys, a dict collects every key no other field names (e.g. a spectrogram mode's parameters).
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

INLINE = {"json": "inline"}  # field metadata: the value's keys sit at the top level of the object


class FormatError(UpcallError):
    """A file of a format this upcall does not read (newer or unknown)."""


class JsonFile:
    """Mixin for frozen dataclasses that are one JSON object on disk."""

    FORMAT: ClassVar[int] = 1  # bump when a reader of the old layout would misread the new one
    FILE: ClassVar[str] = ""  # the file name inside its folder, e.g. "dataset.json"

    def to_json(self) -> dict[str, Any]:
        return {"format": self.FORMAT, **_fields_json(self)}

    @classmethod
    def from_json(cls, value: object, *, source: str | os.PathLike = "") -> Self:
        """The object in ``value`` (a dict read from ``source``, named in errors)."""
        where = f"{source}: " if source else ""
        if not isinstance(value, dict):
            raise UpcallError(f"{where}expected a JSON object for {cls.__name__}")
        fmt = value.get("format", 1)
        if not isinstance(fmt, int) or fmt < 1 or fmt > cls.FORMAT:
            raise FormatError(
                f"{where}{cls.FILE or cls.__name__} format {fmt!r} is not one this upcall reads "
                f"(1 to {cls.FORMAT}); it was written by a newer upcall"
            )
        return _build(cls, value, source)

    def write(self, folder_or_file: str | os.PathLike) -> Path:
        """Write atomically; a folder gets ``FILE`` inside it. Returns the file's path."""
        path = Path(folder_or_file)
        if self.FILE and path.suffix != Path(self.FILE).suffix:
            path = path / self.FILE
        atomic_write_text(path, json.dumps(self.to_json(), indent=2) + "\n")
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


def _fields_json(obj: object) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        value = plain(getattr(obj, f.name))
        if f.metadata.get("json") == "inline":
            out.update(value)
        else:
            out[f.name] = value
    return out


def _build(cls: type, value: dict, source: str | os.PathLike) -> Any:
    """``cls(**fields)`` from the JSON object ``value``; errors name ``source``."""
    where = f"{source}: " if source else ""
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    claimed = {"format"}
    for f in fields:
        kind = _options(hints[f.name])[0]
        inline = f.metadata.get("json") == "inline" and dataclasses.is_dataclass(kind)
        claimed |= {g.name for g in dataclasses.fields(kind)} if inline else {f.name}
    kwargs = {}
    for f in fields:
        if f.metadata.get("json") == "inline":
            kind = _options(hints[f.name])[0]
            if dataclasses.is_dataclass(kind):
                mine = {g.name for g in dataclasses.fields(kind)}
                if mine.isdisjoint(value) and _has_default(f):
                    continue
                kwargs[f.name] = _build(kind, {k: v for k, v in value.items() if k in mine}, source)
            else:  # a dict of the keys no other field names
                kwargs[f.name] = {k: v for k, v in value.items() if k not in claimed}
        elif f.name in value:
            kwargs[f.name] = _read_field(hints[f.name], value[f.name], source)
        elif not _has_default(f):
            raise UpcallError(f"{where}missing field {f.name!r}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise UpcallError(f"{where}{e}") from e


def _has_default(f: dataclasses.Field) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def _read_field(hint: object, value: object, source: str | os.PathLike) -> object:
    for kind in _options(hint):
        if isinstance(kind, type) and issubclass(kind, JsonFile) and isinstance(value, dict):
            return kind.from_json(value, source=source)
        if dataclasses.is_dataclass(kind) and isinstance(value, dict):
            return _build(kind, value, source)  # type: ignore[arg-type]
        if kind is tuple and isinstance(value, list):
            return tuple(value)
    return value


def _options(hint: object) -> tuple:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return tuple(typing.get_origin(a) or a for a in typing.get_args(hint))
    return (typing.get_origin(hint) or hint,)


def plain(value: object) -> object:
    """Tuples become lists and Paths strings, as a reread file has them; nested files and
    dataclasses become objects."""
    if isinstance(value, JsonFile):
        return value.to_json()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _fields_json(value)
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value
