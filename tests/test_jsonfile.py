"""The JSON file contract base: round trips, nested files, versions, one-line errors."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from upcall.errors import UpcallError
from upcall.jsonfile import INLINE, JsonFile


@dataclass(frozen=True)
class Inner(JsonFile):
    FILE = "inner.json"
    mode: str
    size: tuple[int, int] = (1, 2)


@dataclass(frozen=True)
class Outer(JsonFile):
    FILE = "outer.json"
    FORMAT = 2
    name: str
    inner: Inner | None = None
    counts: dict = field(default_factory=dict)


def test_round_trip_with_nested_file_and_tuple(tmp_path):
    value = Outer("x", Inner("tutorial", (129, 30)), {"train": {"whale": 3}})
    path = value.write(tmp_path)
    assert path == tmp_path / "outer.json"
    on_disk = json.loads(path.read_text())
    assert on_disk["format"] == 2 and on_disk["inner"] == {"format": 1, "mode": "tutorial", "size": [129, 30]}
    assert Outer.read(tmp_path) == value


def test_missing_file_is_none_or_error_naming_it(tmp_path):
    assert Outer.read(tmp_path) is None
    with pytest.raises(UpcallError, match=r"outer\.json: not found; run upcall x"):
        Outer.require(tmp_path, "run upcall x")


def test_unversioned_file_reads_as_format_1(tmp_path):
    (tmp_path / "inner.json").write_text('{"mode": "enhanced"}')
    assert Inner.read(tmp_path) == Inner("enhanced")


@pytest.mark.parametrize("fmt", [3, 0, "2"])
def test_newer_or_unknown_format_is_one_line_error(tmp_path, fmt):
    (tmp_path / "outer.json").write_text(json.dumps({"format": fmt, "name": "x"}))
    with pytest.raises(UpcallError) as e:
        Outer.read(tmp_path)
    assert str(tmp_path / "outer.json") in str(e.value) and "\n" not in str(e.value)


def test_missing_required_field_names_file_and_field(tmp_path):
    (tmp_path / "outer.json").write_text('{"format": 2}')
    with pytest.raises(UpcallError, match=r"outer\.json: missing field 'name'"):
        Outer.read(tmp_path)


@dataclass(frozen=True)
class Shape:
    height: int
    width: int = 1


@dataclass(frozen=True)
class Flat(JsonFile):
    FILE = "flat.json"
    mode: str
    extra: dict = field(default_factory=dict, metadata=INLINE)  # every key no field names
    shape: Shape | None = None
    where: Shape = field(default_factory=lambda: Shape(0), metadata=INLINE)  # height, width


def test_inline_fields_sit_at_the_top_level_and_plain_dataclasses_nest(tmp_path):
    value = Flat("enhanced", {"range_db": [-5.0, 25.0]}, Shape(129, 30), Shape(3, 4))
    path = value.write(tmp_path)
    on_disk = json.loads(path.read_text())
    assert list(on_disk) == ["format", "mode", "range_db", "shape", "height", "width"]
    assert on_disk["shape"] == {"height": 129, "width": 30}  # no format: not a file of its own
    assert Flat.read(tmp_path) == value
    assert Flat.from_json({"mode": "tutorial", "fs": 2.0}) == Flat("tutorial", {"fs": 2.0})
