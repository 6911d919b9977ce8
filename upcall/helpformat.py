"""``--help`` shows every option's default: the formatter of every ``upcall`` command."""

from __future__ import annotations

import argparse


class DefaultsFormatter(argparse.HelpFormatter):
    """Every option's help shows its default: added as "(default: X)" unless the help already
    says it (in words, or as "(X)"); none for flags, nor for options whose absence is the
    default (None)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            not action.option_strings
            or text == argparse.SUPPRESS
            or default is None
            or default is False  # a flag (`is`: a default of 0 is worth showing)
            or default == argparse.SUPPRESS
            or (isinstance(default, list) and not default)  # a repeatable option, none given
            or "default" in text.lower()
            or f"({default}" in text
        ):
            return action.help
        shown = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        shown = str(shown).replace("%", "%%")  # argparse expands %-formats in help texts
        return f"{text} (default: {shown})".lstrip()


def show_defaults(parser: argparse.ArgumentParser) -> None:
    """The same formatter for a command's own sub-commands (``upcall digits serve``)."""
    for action in parser._actions:  # argparse keeps sub-parsers only here
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                child.formatter_class = DefaultsFormatter
                show_defaults(child)
