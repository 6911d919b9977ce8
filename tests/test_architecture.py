"""ARCHITECTURE.md against the tree, so the map cannot drift.

The tree block (the indented block that starts with the line ``    upcall/``) has one entry per
line: four spaces, two more per level, then the entry's name: ``name.py`` (a module), ``name/`` (a
folder: a package or a data folder such as ``templates/``) or another file (``caffe.proto``);
then, after two spaces or more, what it is. A line indented to column 30 or more goes on with the
description above it. Every module and package under ``upcall/`` must be listed (``__init__.py``
is its package's line) and every entry must exist.

The layering block (the indented block after the paragraph starting "**Layering**") must be the
layers of the "stages" contract in .importlinter, line for line.

The "File contracts" table: each owner (the first ``upcall.…`` name of a row; bare class names
after it, such as ``TestRecord``, are in the same module) must import and derive from
``upcall.jsonfile.JsonFile``, and every JsonFile class in upcall must be named in the table.

Names in backticks, in ARCHITECTURE.md and README.md: a dotted name that starts with ``upcall`` or
one of its modules (``upcall.job.spec.load_job``, ``engines.loop``) must import, attributes
included, and a path of a module or package (``upcall/job/spec.py``, ``engines/torch/``) must
exist.
"""

from __future__ import annotations

import configparser
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import upcall
from upcall.jsonfile import JsonFile

PACKAGE = Path(upcall.__file__).resolve().parent
MAP = PACKAGE.parent / "ARCHITECTURE.md"
README = PACKAGE.parent / "README.md"
CONTRACTS = PACKAGE.parent / ".importlinter"
INDENT = 4  # the code block's
STEP = 2  # per level
CONTINUED = 30  # a line indented this far continues a description
ENTRY = re.compile(r"(?P<name>[A-Za-z0-9_.-]+/?)(?:\s{2,}\S.*)?$")


class MapError(ValueError):
    pass


def tree_lines(text: str) -> list[str]:
    """The lines of the tree block: from ``    upcall/`` to the first line not indented."""
    lines = text.splitlines()
    try:
        start = lines.index("    upcall/")
    except ValueError:
        raise MapError(f"{MAP.name}: no tree block (a line '    upcall/')") from None
    block = []
    for line in lines[start + 1 :]:
        if not line.startswith(" " * (INDENT + STEP)):
            break
        block.append(line)
    return block


def parse_tree(text: str) -> list[str]:
    """The entries' paths relative to upcall/ (folders end in '/'), in the order listed."""
    entries: list[str] = []
    parents = [""]  # parents[d]: the folder of the entries at depth d + 1
    for number, line in enumerate(tree_lines(text), start=1):
        indent = len(line) - len(line.lstrip(" "))
        if indent >= CONTINUED:
            continue
        where = f"{MAP.name}: tree line {number} ({line.strip()!r})"
        depth, odd = divmod(indent - INDENT, STEP)
        match = ENTRY.match(line.strip())
        if odd or depth < 1 or not match:
            raise MapError(f"{where}: not an entry (a name at 4 + 2 per level spaces)")
        if depth > len(parents):
            raise MapError(f"{where}: indented below an entry that is not a folder")
        del parents[depth:]
        path = parents[-1] + match["name"]
        entries.append(path)
        if path.endswith("/"):
            parents.append(path)
    return entries


def actual_tree() -> set[str]:
    """upcall's modules (but __init__.py) and packages, as parse_tree writes them."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if "__pycache__" in relative.parts:
            continue
        if path.name == "__init__.py":
            if relative.parent != Path("."):
                found.add(f"{relative.parent.as_posix()}/")
        else:
            found.add(relative.as_posix())
    return found


def test_the_parser_reads_the_syntax():
    text = "\n".join(
        [
            "intro",
            "",
            "    upcall/",
            "      cli.py                  the command",
            "      engines/                engines",
            "        torch/                the torch one",
            "          net.py              the net,",
            "                              with more words: not.py",
            "        base.py               the interface",
            "      errors.py",
            "",
            "after",
        ]
    )
    assert parse_tree(text) == [
        "cli.py",
        "engines/",
        "engines/torch/",
        "engines/torch/net.py",
        "engines/base.py",
        "errors.py",
    ]
    with pytest.raises(MapError, match="not a folder"):
        parse_tree("    upcall/\n      cli.py\n        sub.py\n")
    with pytest.raises(MapError, match="not an entry"):
        parse_tree("    upcall/\n       cli.py\n")


def test_the_tree_lists_every_module_and_package():
    listed = parse_tree(MAP.read_text())
    twice = sorted({entry for entry in listed if listed.count(entry) > 1})
    assert not twice, f"{MAP.name} lists these more than once: {twice}"
    missing = sorted(actual_tree() - set(listed))
    assert not missing, f"{MAP.name}'s tree lacks these (add a line each): {missing}"
    gone = sorted(entry for entry in listed if not (PACKAGE / entry).exists())
    assert not gone, f"{MAP.name}'s tree lists what upcall/ does not hold: {gone}"


def layering_block(text: str) -> list[str]:
    """The lines of the first indented block after "**Layering**", stripped."""
    lines = text.split("**Layering**", 1)[1].splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("    "))
    block = []
    for line in lines[start:]:
        if not line.startswith("    "):
            break
        block.append(line.strip())
    return block


def test_the_layering_block_is_the_contract():
    contracts = configparser.ConfigParser()
    contracts.read(CONTRACTS)
    layers = contracts["importlinter:contract:stages"]["layers"].strip().splitlines()
    assert layering_block(MAP.read_text()) == [line.strip() for line in layers]


def contract_owners(text: str) -> dict[str, list[str]]:
    """File contracts table: the file column -> the owners named (qualified names)."""
    section = text.split("**File contracts.**", 1)[1]
    owners: dict[str, list[str]] = {}
    for line in section.splitlines():
        if not line.startswith("|"):
            if owners:
                break
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        names = re.findall(r"`([A-Za-z_][\w.]*)`", cells[-1]) if len(cells) >= 2 else []
        module = None
        qualified = []
        for name in names:
            if name.startswith("upcall.") and module is None:
                module = name.rpartition(".")[0]
                qualified.append(name)
            elif module and name[:1].isupper() and "." not in name:
                qualified.append(f"{module}.{name}")
        if qualified:
            owners[cells[0]] = qualified
    return owners


def _resolve(name: str) -> object:
    module, _, attribute = name.rpartition(".")
    return getattr(importlib.import_module(module), attribute)


def test_every_file_contract_owner_exists_and_is_a_json_file():
    owners = contract_owners(MAP.read_text())
    assert len(owners) >= 15, owners
    for file, names in owners.items():
        for name in names:
            try:
                owner = _resolve(name)
            except (ImportError, AttributeError) as e:
                pytest.fail(f"{MAP.name}: the owner of {file}, {name}, does not exist: {e}")
            assert isinstance(owner, type) and issubclass(owner, JsonFile), (file, name)


def _all_subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | _all_subclasses(sub)
    return found


def test_every_json_file_class_is_in_the_table():
    for info in pkgutil.walk_packages(upcall.__path__, prefix="upcall."):
        if info.name != "upcall.__main__":  # that one runs the command
            importlib.import_module(info.name)
    named = {name for names in contract_owners(MAP.read_text()).values() for name in names}
    subclasses = (c for c in _all_subclasses(JsonFile) if c.__module__.startswith("upcall."))
    classes = {f"{c.__module__}.{c.__qualname__}" for c in subclasses}  # not the tests' own
    unnamed = sorted(classes - named)
    assert not unnamed, f"{MAP.name}'s File contracts table does not name: {unnamed}"


# a dotted name's last part that makes it a file name (``metrics.jsonl``), not a Python name
FILE_SUFFIXES = {"py", "json", "jsonl", "txt", "png", "csv", "proto", "onnx", "toml", "html", "pt"}
DOTTED = re.compile(r"(?<![\w/.-])([A-Za-z_]\w*)((?:\.[A-Za-z_]\w*)+)")
MODULE_PATH = re.compile(
    r"(?<![\w/.$-])(upcall/)?([a-z_]+)/((?:[\w.-]+/)*(?:[\w.-]+\.py|[\w.-]+/)?)"
)


def _tops() -> set[str]:
    """upcall's top-level modules and packages: the first parts a name in the map may start with."""
    return {p.stem for p in PACKAGE.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}


def _missing(name: str) -> str | None:
    """Why the dotted name ``name`` (upcall.…) does not exist; None when it does."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:end]))
        except ModuleNotFoundError:
            continue
        for part in parts[end:]:
            fields = getattr(found, "__dataclass_fields__", {})
            if not hasattr(found, part) and part not in fields:
                return f"{'.'.join(parts[:end])} has no {'.'.join(parts[end:])}"
            found = getattr(found, part, None)
        return None
    return "no such module"


def named_in(text: str) -> tuple[set[str], set[str]]:
    """The dotted upcall names and the upcall module paths in backticks in ``text``."""
    tops = _tops()
    names, paths = set(), set()
    for line in text.splitlines():
        for span in re.findall(r"`([^`]+)`", line):
            for match in DOTTED.finditer(span):
                first, rest = match.groups()
                if rest.rpartition(".")[2] in FILE_SUFFIXES:
                    continue
                if first == "upcall":
                    names.add(match[0])
                elif first in tops:
                    names.add(f"upcall.{match[0]}")
            for match in MODULE_PATH.finditer(span):
                prefix, first, rest = match.groups()
                if prefix:
                    paths.add(match[0])
                elif first in tops and rest:
                    paths.add(f"upcall/{match[0]}")
    return names, paths


@pytest.mark.parametrize("document", [MAP, README], ids=lambda p: p.name)
def test_names_in_backticks_exist(document):
    names, paths = named_in(document.read_text())
    wrong = {name: _missing(name) for name in sorted(names)}
    wrong = {name: why for name, why in wrong.items() if why}
    wrong.update(
        {path: "no such file" for path in sorted(paths) if not (PACKAGE.parent / path).exists()}
    )
    assert not wrong, f"{document.name} names what does not exist: {wrong}"
