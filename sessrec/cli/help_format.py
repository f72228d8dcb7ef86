"""How ``--help`` looks: Click's metavars (TEXT, INTEGER, FLOAT RANGE, FILE, [a|b]) in place of
Typer 0.29's ``<str>``/``<int range>``/``{SPEC}``, and option names that are never cut at 80
columns. ``SessrecGroup``, the root group's class, applies both to every command of the app once
it is built; with a Typer that lacks these hooks the help is Typer's own, unchanged."""

from __future__ import annotations

import inspect
import typing
from typing import Any

import typer
from typer.core import TyperGroup

_TYPE_NAMES: dict[Any, str] = {str: "TEXT", int: "INTEGER", float: "FLOAT", bool: "BOOLEAN"}
_PATH_NAMES = {"file": "FILE", "dir": "DIRECTORY", "path": "PATH"}


def click_metavar(param: Any) -> str | None:
    """Click's metavar of a Typer parameter (its type, upper case), or None where unknown."""
    desc = getattr(param, "type_descriptor", None)
    if desc is None:
        return None
    try:
        if desc.is_choice:
            return "[" + "|".join(str(getattr(c, "value", c)) for c in desc.choices or ()) + "]"
        annotation = desc.annotation
        if desc.is_list:
            (annotation,) = typing.get_args(annotation) or (str,)
        if desc.is_path:
            return _PATH_NAMES.get(desc.path_type, "PATH")
        name = _TYPE_NAMES.get(annotation, "TEXT")
        return f"{name} RANGE" if desc.is_ranged else name
    except Exception:  # a Typer whose descriptors differ: keep its own display
        return None


def _click_style(param: Any) -> None:
    """Give one parameter Click's metavar in the help's type column and usage line."""
    if not hasattr(param, "display_type"):
        return
    metavar = click_metavar(param)
    if metavar is None:
        return
    if isinstance(param, typer.core.TyperOption):
        if getattr(param, "is_flag", False) or getattr(param, "count", False):
            param.display_type = lambda ctx: ""  # type: ignore[method-assign]  # a flag: no type
        elif param.metavar is None:
            param.metavar = metavar
        return
    param.display_type = lambda ctx: metavar
    if hasattr(param, "_usage_display_name"):

        def usage(param: Any = param) -> str:
            name = param.display_name_raw + ("..." if param.nargs != 1 else "")
            return name if param.required else f"[{name}]"

        param._usage_display_name = usage


def _walk(command: Any) -> None:
    for param in getattr(command, "params", ()):
        _click_style(param)
    if getattr(command, "help", None):
        command.help = _reflow(command.help)
    format_help = command.format_help

    def format_whole(ctx: Any, formatter: Any) -> None:
        _keep_option_names_whole()
        for param in command.get_params(ctx):  # --help and the completion options too
            if param.param_type_name == "option" and getattr(param, "is_flag", False):
                param.display_type_rich = lambda ctx: ""
        format_help(ctx, formatter)

    command.format_help = format_whole
    for sub in getattr(command, "commands", {}).values():
        _walk(sub)


def _reflow(text: str) -> str:
    """A docstring's paragraphs as single lines (Rich's help keeps a docstring's line breaks,
    so the commands list showed a description cut in mid-sentence)."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(p if p.startswith("\b") else " ".join(p.split()) for p in paragraphs)


class SessrecGroup(TyperGroup):
    """The root ``sessrec`` group: Click's metavars on every command, readable at 80 columns."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        _walk(self)


_patched = False


def _keep_option_names_whole() -> None:
    """Typer's options table lets Rich shrink every column alike on a narrow terminal, so
    ``--resume-existing`` comes out as ``--resume-exi…``. Its tables are made with no columns
    declared; this declares them on the first row: the option names never wrap or shrink, the
    help text takes what width is left."""
    global _patched
    if _patched:
        return
    try:
        from typer import rich_utils
    except ImportError:  # no Rich: Click's plain help, which never cuts names
        return
    base = rich_utils.Table

    class OptionsTable(base):  # type: ignore[misc, valid-type]
        def add_row(self, *renderables: Any, **kwargs: Any) -> None:
            cells = list(renderables)
            if not self.columns and len(cells) in (6, 7):  # [required], long, short, --no-long, -no-short, type, help
                self.options_table = True
                names = len(cells) - 4
                for index in range(len(cells) - 2):
                    type_column = index == names
                    self.add_column(no_wrap=index < names, overflow="fold", max_width=16 if type_column else None)
            if getattr(self, "options_table", False):
                cells = _stack_secondary_names(cells, len(cells) - 6)
            super().add_row(*cells, **kwargs)

    rich_utils.Table = OptionsTable  # type: ignore[misc]
    _patched = True


def _stack_secondary_names(cells: list[Any], offset: int) -> list[Any]:
    """``--dry-run`` and ``--no-dry-run`` in one column, one above the other (two columns side by
    side left the help text a dozen characters at 80 columns)."""
    from rich.text import Text

    merged = []
    for first, second in ((cells[offset], cells[offset + 2]), (cells[offset + 1], cells[offset + 3])):
        if isinstance(first, Text) and isinstance(second, Text) and second.plain:
            first = first.copy()
            if first.plain:
                first.append("\n")
            first.append_text(second)
        merged.append(first)
    return [*cells[:offset], *merged, *cells[offset + 4 :]]
