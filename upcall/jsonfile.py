"""The base of every JSON settings and results file: one frozen dataclass per file contract.

Each file (spectrograms.json, lists.json, dataset.json, config.json, summary.json, the records of
metrics.jsonl) has exactly one owner: a frozen dataclass deriving from :class:`JsonFile`, defined
in the module of the stage that writes it. Writers call :meth:`JsonFile.write`; every reader calls
:meth:`JsonFile.read` (or :meth:`from_json` for a record in a larger file), never ``json.loads``
and string keys. A file carries ``"format": N``; a file without one is format 1 (written before
versions existed); a newer or unknown format is a one-line error naming the file.

Every field is read as its annotation says (msgspec checks it; the annotations are the contract):
a wrong type is a one-line error naming the file, the field's path and what was expected
(``JOB/metrics.jsonl:3: iter: expected int, got str``). Nothing is coerced but what JSON cannot
tell apart: a whole number is a valid float (``"lr": 1``), a list a tuple, a string a ``Path``;
``true`` is no number and ``"1"`` or ``1.0`` no int.

Fields whose type is itself a :class:`JsonFile` (or ``X | None``) are read recursively, so
dataset.json's copy of spectrograms.json is a ``SpectrogramSettings`` again; a plain dataclass
field is a nested object without a format of its own. A field declared with
``metadata=INLINE`` is spread over the top level of the object: a dataclass's fields are its own
keys, a dict collects every key no other field names (e.g. a spectrogram mode's parameters).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import types
import typing
from pathlib import Path, PurePath
from typing import Any, ClassVar, Self

import msgspec

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
        """The object in ``value`` (a dict read from ``source``, named in errors), every field
        checked against its annotation."""
        return _read_file(cls, value, source, "")

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


def _where(source: str | os.PathLike, path: str) -> str:
    """The start of an error: ``FILE: field.path: `` (either part may be empty)."""
    return "".join(f"{part}: " for part in (str(source), path) if part)


def _read_file(cls: Any, value: object, source: str | os.PathLike, path: str) -> Any:
    """A :class:`JsonFile` at ``path`` (a field path, "" for the whole file) of ``source``."""
    if not isinstance(value, dict):
        raise UpcallError(f"{_where(source, path)}expected a JSON object for {cls.__name__}")
    fmt = value.get("format", 1)
    if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt < 1 or fmt > cls.FORMAT:
        raise FormatError(
            f"{_where(source, path)}{cls.FILE or cls.__name__} format {fmt!r} is not one this "
            f"upcall reads (1 to {cls.FORMAT}); it was written by a newer upcall"
        )
    return _build(cls, value, source, path)


@dataclasses.dataclass(frozen=True)
class _Field:
    name: str
    hint: Any  # the resolved annotation
    kind: Any  # its first option without type arguments: the class a nested object reads as
    inline: bool
    required: bool


@functools.cache
def _plan(cls: type) -> tuple[tuple[_Field, ...], frozenset[str], bool]:
    """``cls``'s fields with their resolved annotations, every top-level key they claim, and
    whether msgspec may read the object whole (no inline field, no nested file at any depth)."""
    hints = typing.get_type_hints(cls)
    plan, claimed = [], {"format"}
    for f in dataclasses.fields(cls):
        kind = _options(hints[f.name])[0]
        inline = f.metadata.get("json") == "inline"
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        plan.append(_Field(f.name, hints[f.name], kind, inline, required))
        nested = inline and dataclasses.is_dataclass(kind)
        claimed |= {g.name for g in dataclasses.fields(kind)} if nested else {f.name}
    whole = not any(f.inline for f in plan) and all(_plain(f.hint) for f in plan)
    return tuple(plan), frozenset(claimed), whole


def _plain(hint: object) -> bool:
    """Whether ``hint`` holds no :class:`JsonFile` and no dataclass with an inline field."""
    if isinstance(hint, type) and issubclass(hint, JsonFile):
        return False
    if dataclasses.is_dataclass(hint):
        return _plan(hint)[2]  # type: ignore[arg-type]
    return all(_plain(a) for a in typing.get_args(hint))


def _build(cls: type, value: dict, source: str | os.PathLike, path: str) -> Any:
    """``cls(**fields)`` from the JSON object ``value``; errors name ``source`` and ``path``."""
    plan, claimed, whole = _plan(cls)
    if whole:  # the fast way; on a wrong value, the field-by-field way below says where
        try:
            return msgspec.convert(value, cls, dec_hook=_path_hook)
        except msgspec.ValidationError:
            pass
    kwargs = {}
    for f in plan:
        if f.inline and dataclasses.is_dataclass(f.kind):
            mine = {g.name for g in dataclasses.fields(f.kind)}
            if mine.isdisjoint(value) and not f.required:
                continue
            mine_only = {k: v for k, v in value.items() if k in mine}
            kwargs[f.name] = _build(f.kind, mine_only, source, path)
        elif f.inline:  # a dict of the keys no other field names
            kwargs[f.name] = {k: v for k, v in value.items() if k not in claimed}
        elif f.name in value:
            inner = f"{path}.{f.name}" if path else f.name
            kwargs[f.name] = _read_field(f.hint, value[f.name], source, inner)
        elif f.required:
            raise UpcallError(f"{_where(source, path)}missing field {f.name!r}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise UpcallError(f"{_where(source, path)}{e}") from e


def _read_field(hint: object, value: object, source: str | os.PathLike, path: str) -> object:
    """``value`` as ``hint`` says; a nested object is read field by field (its own errors)."""
    if isinstance(value, dict):
        for kind in _options(hint):
            if isinstance(kind, type) and issubclass(kind, JsonFile):
                return _read_file(kind, value, source, path)
            if dataclasses.is_dataclass(kind):
                return _build(kind, value, source, path)  # type: ignore[arg-type]
    try:
        return msgspec.convert(value, hint, dec_hook=_path_hook)
    except msgspec.ValidationError:
        inner, why = _explain(hint, value)
        raise UpcallError(f"{_where(source, path + inner)}{why}") from None


def _path_hook(kind: type, value: object) -> object:
    """msgspec's hook for the types it does not know: a ``Path`` field is a string in JSON."""
    if isinstance(kind, type) and issubclass(kind, PurePath):
        if isinstance(value, str):
            return kind(value)
        raise TypeError(f"expected str (a path), got {type(value).__name__}")
    raise TypeError(f"cannot read a {kind!r} from JSON")


def _explain(hint: object, value: object) -> tuple[str, str]:
    """(where inside ``value``, e.g. ``[2]`` or ``.whale``; why) ``value`` is not a ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if _is_union(hint) and value is not None:
        shaped = [a for a in args if a is not type(None) and _same_shape(a, value)]
        if len(shaped) == 1:
            return _explain(shaped[0], value)
    elif origin is dict and isinstance(value, dict) and len(args) == 2:
        for key, item in value.items():
            if not _fits(args[0], key):
                return "", f"key {key!r}: {_message(args[0], key)}"
            if not _fits(args[1], item):
                inner, why = _explain(args[1], item)
                return f".{key}{inner}", why
    elif origin in (list, tuple) and isinstance(value, list | tuple) and args:
        if origin is list or args[-1] is Ellipsis:
            kinds = [args[0]] * len(value)
        elif len(args) == len(value):
            kinds = list(args)
        else:
            kinds = []
        for i, (kind, item) in enumerate(zip(kinds, value, strict=False)):
            if not _fits(kind, item):
                inner, why = _explain(kind, item)
                return f"[{i}]{inner}", why
    return "", _message(hint, value)


def _fits(hint: object, value: object) -> bool:
    try:
        msgspec.convert(value, hint, dec_hook=_path_hook)
    except msgspec.ValidationError:
        return False
    return True


def _message(hint: object, value: object) -> str:
    """msgspec's reason, as ``expected int, got str`` (its path is given by :func:`_explain`)."""
    try:
        msgspec.convert(value, hint, dec_hook=_path_hook)
    except msgspec.ValidationError as e:
        why = str(e).split(" - at `", 1)[0].replace("`", "")
        return why[:1].lower() + why[1:]
    return f"expected {hint}"


def _same_shape(hint: object, value: object) -> bool:
    """Whether ``hint`` is the option of a union that a JSON object or array ``value`` is for."""
    kind = typing.get_origin(hint) or hint
    if isinstance(value, dict):
        return kind is dict or dataclasses.is_dataclass(kind)
    if isinstance(value, list | tuple):
        return kind in (list, tuple)
    return False


def _is_union(hint: object) -> bool:
    return isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union


def _options(hint: object) -> tuple:
    if _is_union(hint):
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
    if isinstance(value, PurePath):
        return str(value)
    return value
