"""`--config FILE`: a command's options written down in a TOML file.

A key is an option's long name without its dashes (`weights`, `max-fps`, `keep-free`; `max_fps`
reads the same), its value what the option takes on the command line: a string or a number, true or
false for a flag (`quiet = true`, `window = false`), an array for an option that may be given several
times. The command line wins: an option given there replaces the file's value of it, every value of a
repeatable one. Relative paths are relative to the folder srx runs in, as on the command line.

A command may also take arrays of tables (`tables=`): `srx stream`'s `[[source]]`, one camera each,
holding `source = "URL"` (or `camera = N`), its `name` and its own values of the options that are set
per source (`max-fps = 5` in the table is `--max-fps NAME=5`). Those options merge by name instead
(`per_item_values`): `--max-fps gate=3` on the command line replaces gate's value alone, a bare
`--max-fps 3` the file's bare one; and the options that name the items (`--source`, `--camera`,
`--demo`) are replaced together (`replaced_together`): sources on the command line stand for all of
the file's, whose own values then go with them.

The file is read by the option's callback, which runs before any other option is taken (it is
eager), and becomes the command's `default_map`: each option then takes its value from the command
line, else from the file, else its default, and converts it as it would the command line's text.
"""
from __future__ import annotations

import difflib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from srx.errors import SrxError

log = logging.getLogger("srx")


@dataclass(frozen=True)
class Tables:
    """An array of tables a command's file may hold: `key` (`source`), the keys one of which says
    what each table is, each the name of the option that takes it (`("source", "camera")`), and the
    options each table may set for itself (`per_item`), given to the option as NAME=VALUE."""

    key: str
    kinds: tuple[str, ...]
    per_item: tuple[str, ...]
    #: the options that, given on the command line, replace all of the file's items (stream: --source,
    #: --camera and --demo); the kinds when empty
    replaced_by: tuple[str, ...] = ()

    @property
    def replacing(self) -> tuple[str, ...]:
        return self.replaced_by or self.kinds


#: check(key, text): a command's own check of a file's value for `key` (a duration, a size, an address, a
#: table's name; a key it does not know passes), raising SrxError, so that a bad value is said with the
#: file, the table and the key rather than as an option the user never typed
Check = Callable[[str, str], Any]


#: ctx.meta keys: the per-item values the file gave ({parameter name: ["NAME=VALUE" or "VALUE", ...]}), and the file
FILE_VALUES = "srx.config.per_item"
FILE_PATH = "srx.config.path"

#: a [NAME=]VALUE option's name part, as srx.camera.multi reads it (NAME_PATTERN; a value after the '=')
_ITEM = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,39})=(.+)$", re.S)


#: a [user]:password@ in a URL whose password is written out (not ${NAME}, which srx reads from the environment)
_PASSWORD = re.compile(r"://[^/@\s:]*:(?!\$\{)[^@/\s]+@")


def config_option(command: str, tables: Optional[Tables] = None, check: Optional[Check] = None):
    """--config FILE for `command`: its options from a TOML file (module docstring)."""
    extra = (f" An array of {tables.key} tables holds one {tables.key} each: {' = or '.join(tables.kinds)} =, name = "
             f"and its own {', '.join(tables.per_item)}." if tables else "")
    merge = (f" ({', '.join('--' + k for k in tables.replacing)} replace all of the file's {tables.key}s, their "
             f"own values with them; --{tables.per_item[0]} NAME=VALUE and the like replace that {tables.key}'s own "
             f"alone, a bare --{tables.per_item[0]} VALUE the file's top-level one)" if tables else "")
    return typer.Option(  # a list, so that a second --config is seen (Typer keeps the last of several)
        None, "--config", metavar="<path>", is_eager=True, show_default=False,
        callback=lambda ctx, param, value: _load(ctx, value, command, tables, check),
        help=f"Take options from this TOML file: a key per option, named as the option without its dashes "
             f"(keep-free = \"10%\", quiet = true, an array for a repeatable one).{extra} An option on the command "
             f"line replaces the file's value of it{merge}.")


def _load(ctx: Any, values: Any, command: str, tables: Optional[Tables], check: Optional[Check]) -> list[str]:
    """--config's callback: the file read into the command's default_map; its value, the file's
    name (a list of one: the option is declared repeatable so that a second one is seen)."""
    files = [str(v) for v in (values or []) if v is not None]
    if not files or ctx.resilient_parsing:
        return files
    if len(set(files)) > 1:
        raise SrxError(f"--config given {len(files)} times ({', '.join(files)}); expected one file (srx reads one)")
    path = Path(files[0])
    defaults, per_item = _read(path, ctx, command, tables, check)
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    ctx.meta[FILE_VALUES] = per_item
    ctx.meta[FILE_PATH] = path
    return files[:1]


def from_command_line(ctx: Any, name: str) -> bool:
    """Whether the parameter `name` (its Python name) was given on the command line."""
    return getattr(ctx.get_parameter_source(name), "name", "") == "COMMANDLINE"


def replaced_together(ctx: Any, values: dict[str, Any], empty: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Options that together say one thing (stream's sources: source, camera, demo): where the
    command line gives any of them, the file's values of the others are left out too, so the
    command line's sources replace the file's rather than join some of them. Returns the values and
    whether the command line replaced them (what `per_item_values` takes as `replaced`)."""
    if not any(from_command_line(ctx, name) for name in values):
        return values, False
    return {name: value if from_command_line(ctx, name) else empty[name] for name, value in values.items()}, True


def per_item_values(ctx: Any, name: str, given: Optional[list[str]], present: set[str], replaced: bool) -> list[str]:
    """A [NAME=]VALUE option's values: the command line's, then the file's for each item the command
    line does not set (a bare value stands for every item without its own). Where the command line
    replaced the file's items (`replaced`), the file's values for them went with them: only its bare
    value is kept. Otherwise a file's value for an item the run does not have is an SrxError naming
    the file (a misspelt camera would run without its own value)."""
    if FILE_VALUES not in ctx.meta:  # no --config
        return list(given or [])
    line = list(given or []) if from_command_line(ctx, name) else []
    taken = {_item_key(v) for v in line}
    kept = [v for v in ctx.meta[FILE_VALUES].get(name, []) if _item_key(v) not in taken
            and (_item_key(v) == "" or not replaced)]
    option = name.replace("_", "-")
    for v in kept:
        if _item_key(v) and _item_key(v) not in present:
            raise SrxError(f"--config {ctx.meta[FILE_PATH]}: {option} = {v!r}: no source is named {_item_key(v)!r}; "
                           f"the sources are {', '.join(sorted(present))}")
    return kept + line


def _item_key(text: str) -> str:
    """The NAME of NAME=VALUE, "" for a bare value (srx.camera.multi's split_name reads it so)."""
    m = _ITEM.match(str(text).strip())
    return m.group(1) if m else ""


def options_from_file(path: Path, ctx: Any, command: str, tables: Optional[Tables] = None,
                      check: Optional[Check] = None) -> dict[str, Any]:
    """The file's options as a click `default_map` ({parameter name: value or list of values}),
    each value checked as the option would check its command-line text (and by `check`). Every
    mistake is an SrxError naming the file and the key."""
    return _read(path, ctx, command, tables, check)[0]


def _read(path: Path, ctx: Any, command: str, tables: Optional[Tables],
          check: Optional[Check] = None) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """options_from_file, and the per-item options' values apart (FILE_VALUES)."""
    where = f"--config {path}"
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (Windows Notepad) is no TOML error
    except FileNotFoundError:
        raise SrxError(f"{where}: no such file; expected a TOML file of `srx {command}` options") from None
    except IsADirectoryError:
        raise SrxError(f"{where} is a folder; expected a TOML file of `srx {command}` options") from None
    except PermissionError:
        raise SrxError(f"{where}: user {_user()} may not read it; make it readable by the user srx runs as (e.g. "
                       f"chgrp {_user()} {path} && chmod 640 {path})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SrxError(f"{where}: cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
    toml = toml_module()
    try:
        data = toml.loads(text)
    except toml.TOMLDecodeError as exc:
        raise SrxError(f"{where} is not valid TOML: {exc}") from None
    options = _options(ctx)
    given: dict[str, list[Any]] = {}
    scalars: dict[str, Any] = {}
    items = data.pop(tables.key, None) if tables else None
    if tables and items is not None:
        plain = [i for i in (items if isinstance(items, list) else [items]) if not isinstance(i, dict)]
        if plain:  # source = ["rtsp://...", ...]: the option's own values, beside any tables
            data[tables.key] = plain
        _read_tables([i for i in (items if isinstance(items, list) else [items]) if isinstance(i, dict)], tables,
                     where, given, options, check)
    seen: dict[str, str] = {}  # parameter name -> the key that gave it
    for raw_key, val in data.items():
        key = raw_key.replace("_", "-")
        param = options.get(key)
        if param is None and tables is not None and key == "name":  # a table's key, above its [[KEY]] line
            raise SrxError(f"{where}: name = ... at the top of the file; a name belongs in a [[{tables.key}]] table: "
                           f"a line [[{tables.key}]] above it, then name = and {' = or '.join(tables.kinds)} =")
        if param is None:
            raise SrxError(f"{where}: unknown key {raw_key!r}{_close(key, options, tables)}; expected an option of "
                           f"`srx {command}` without its dashes (srx {command} --help lists them)")
        if param.name in seen:
            raise SrxError(f"{where}: {key} is given twice (as {seen[param.name]} and {raw_key}); expected it once")
        seen[param.name] = raw_key
        if getattr(param, "is_flag", False) and not getattr(param, "multiple", False):
            if not isinstance(val, bool):
                raise SrxError(f"{where}: {raw_key} = {_shown(val)}: expected true or false")
            negated = f"--{key}" in getattr(param, "secondary_opts", ())  # no-window = true: window = false
            scalars[param.name] = (not val) if negated else val
            continue
        values = val if isinstance(val, list) else [val]
        if isinstance(val, list) and not param.multiple:
            raise SrxError(f"{where}: {raw_key} = {_shown(val)}: expected one value, not an array (--{key} is "
                           "given once)")
        if not values:
            raise SrxError(f"{where}: {raw_key} = []: expected at least one value (leave the key out for none)")
        given.setdefault(key, [])[:0] = [_text(v, raw_key, where) for v in values]  # before the tables' own
    result: dict[str, Any] = {}
    for key, vals in given.items():
        param = options[key]
        for v in vals:
            _check(param, key, v, where, ctx)
            if tables is not None and key in tables.per_item:  # NAME=VALUE or VALUE: the value checked
                m = _ITEM.match(v.strip())
                _check_value(check, key, m.group(2) if m else v, where)
            else:
                _check_value(check, key, v, where)
        if tables is not None and key in tables.per_item:
            keys = [_item_key(v) for v in vals]
            twice = sorted({k for k in keys if keys.count(k) > 1})
            if twice:
                raise SrxError(f"{where}: {key} is given twice for " + (f"source {twice[0]!r} (at the top of the file and "
                               f"in its table, say)" if twice[0] else "every source")
                               + f"; expected one {key} for each source")
        result[param.name] = vals if param.multiple else vals[0]
    result.update(scalars)
    if _PASSWORD.search(text) and _readable_by_all(path):
        log.warning("%s holds a camera password and every user of this machine can read it: write ${NAME} in the "
                    "URL for the password and give srx NAME in its environment, or make the file readable by the "
                    "user srx runs as alone (chgrp that user's group, chmod 640)", path)
    per_item = {options[k].name: list(v) for k, v in given.items() if tables is not None and k in tables.per_item}
    return result, per_item


def toml_module() -> Any:
    """Python's tomllib (3.11+), else the tomli package it came from (a dependency of srx on 3.10)."""
    try:
        import tomllib

        return tomllib
    except ModuleNotFoundError:
        try:
            import tomli

            return tomli
        except ModuleNotFoundError:
            raise SrxError("--config needs a TOML reader: Python 3.11's tomllib or, on Python 3.10, the tomli "
                           "package (pip install tomli)") from None


def _options(ctx: Any) -> dict[str, Any]:
    """{long option name without dashes: click parameter} of the command, --config itself left out
    (a flag's other name too: no-window of --window/--no-window)."""
    found: dict[str, Any] = {}
    for param in ctx.command.params:
        if getattr(param, "param_type_name", "") != "option" or param.name == "config":
            continue
        for opt in [*param.opts, *getattr(param, "secondary_opts", ())]:
            if opt.startswith("--"):
                found[opt[2:]] = param
    return found


def _read_tables(entries: list[dict], tables: Tables, where: str, given: dict[str, list[Any]],
                 options: dict[str, Any], check: Optional[Check]) -> None:
    """Each [[KEY]] table: its one kind (source = or camera =) with its name, NAME=VALUE for its own options."""
    allowed = ("name", *tables.kinds, *tables.per_item)
    named: dict[str, int] = {}
    for n, raw in enumerate(entries, 1):
        entry = {k.replace("_", "-"): v for k, v in raw.items()}
        name = entry.get("name")
        label = f"{where}: [[{tables.key}]] {n}" + (f" ({name})" if isinstance(name, str) and name else "")
        spelt: dict[str, str] = {}
        for key in raw:  # max_fps and max-fps both
            if key.replace("_", "-") in spelt:
                raise SrxError(f"{label}: {key.replace('_', '-')} is given twice (as {spelt[key.replace('_', '-')]} and "
                               f"{key}); expected it once")
            spelt[key.replace("_", "-")] = key
        for key in entry:
            if key in allowed:
                continue
            if key in options:  # an option for all of them, written below a [[KEY]] line
                raise SrxError(f"{label}: {key} is an option for every {tables.key}, not one {tables.key}'s own: put it "
                               f"above the first [[{tables.key}]] line (in TOML a key below a [[{tables.key}]] line "
                               f"belongs to that table); a table takes {', '.join(allowed)}")
            near = difflib.get_close_matches(key, allowed, n=1)
            raise SrxError(f"{label}: unknown key {key!r}" + (f" (did you mean {near[0]}?)" if near else "")
                           + f"; expected {', '.join(allowed)}")
        if name is not None and (not isinstance(name, str) or not name):
            raise SrxError(f"{label}: name = {_shown(name)}: expected a name in quotes, e.g. name = \"door\"")
        if name is not None:
            if name in named:
                raise SrxError(f"{label}: name = {name!r} is [[{tables.key}]] {named[name]}'s name too; expected a "
                               f"name of its own for each {tables.key}")
            named[name] = n
            _check_value(check, "name", name, label)
        kinds = [k for k in tables.kinds if k in entry]
        if len(kinds) != 1:
            raise SrxError(f"{label}: expected one of {' or '.join(k + ' =' for k in tables.kinds)}, found "
                           + (" and ".join(kinds) if kinds else "neither"))
        spec = _text(entry[kinds[0]], kinds[0], label)
        _check_value(check, kinds[0], spec, label)
        given.setdefault(kinds[0], []).append(f"{name}={spec}" if name else spec)
        for key in tables.per_item:
            if key in entry:
                if not name:
                    raise SrxError(f"{label}: {key} = ... is this {tables.key}'s own, so the {tables.key} needs a "
                                   f"name = \"...\" (or set {key} for every {tables.key} at the top of the file)")
                value = _text(entry[key], key, label)
                _check_value(check, key, value, label)
                given.setdefault(key, []).append(f"{name}={value}")


def _check_value(check: Optional[Check], key: str, text: str, label: str) -> None:
    """A value checked by the command's own `check`; its message (which says the option, --max-fps
    'fast': ...) said as the file's key."""
    if check is None:
        return
    try:
        check(key, text)
    except SrxError as exc:
        why = re.sub(r"^(--[a-z-]+ |source name )('[^']*'|[^\s':]+)(:| \(in [^)]*\):) ", "", str(exc), count=1)
        raise SrxError(f"{label}: {key} = {text!r}: {why}") from None


def _text(value: Any, key: str, where: str) -> str:
    """A TOML value as the command line's text: strings as they are, numbers written out."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise SrxError(f"{where}: {key} = {_shown(value)}: expected a string or a number")
    return value if isinstance(value, str) else str(value)


def _check(param: Any, key: str, text: str, where: str, ctx: Any) -> None:
    try:
        if hasattr(param, "get_runtime_param"):  # Typer 0.2x converts through its own types
            param.get_runtime_param().coerce([text] if param.multiple else text, param=param, ctx=ctx)
        else:  # Typer on click
            param.type.convert(text, param, ctx)
    except typer.BadParameter as exc:
        raise SrxError(f"{where}: {key} = {text!r}: {exc.message}") from None


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return "a table" if isinstance(value, dict) else "an array"
    return repr(value)


def _close(key: str, options: dict[str, Any], tables: Optional[Tables]) -> str:
    names = list(options) + ([tables.key] if tables else [])
    near = difflib.get_close_matches(key, names, n=1)
    return f" (did you mean {near[0]}?)" if near else ""


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001  (no name for this uid)
        return str(os.getuid())


def _readable_by_all(path: Path) -> bool:
    try:
        return bool(os.stat(path).st_mode & 0o004)
    except OSError:
        return False
