"""Reading configuration text within limits: file size, nesting depth, and alias expansion.

A config file or a JSON-valued environment variable is operator input, but a copied-in
"billion laughs" (YAML aliases nesting aliases) would hang start-up, and deep nesting would
end in a RecursionError traceback. Both are refused here with a ``ConfigTooLarge`` naming
where, before pydantic ever sees the data. Any other reason the file cannot be read (YAML
syntax, not UTF-8, an integer too long to convert) is an ``UnreadableConfig`` too, with a
message that never quotes the file (a line of it may hold a secret).

Usage::

    data = load_yaml_file(path)       # a dict, or UnreadableConfig saying why
    check_json_depth(os.environ[name])  # ConfigTooLarge if nested too deep
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_VALUES",
    "ConfigTooLarge",
    "UnreadableConfig",
    "check_json_depth",
    "load_yaml_file",
]

# Far beyond any real configuration (a route tree ten levels deep is about 25 levels), far
# below what the parsers' and validators' recursion survives.
MAX_DEPTH = 64
MAX_FILE_BYTES = 1 << 20
# Values once aliases are expanded: what pydantic will walk, however the YAML spelled it.
MAX_VALUES = 100_000


class UnreadableConfig(ValueError):
    """The config text cannot be used; the message says why and where, quoting nothing."""


class ConfigTooLarge(UnreadableConfig):
    """The text is over one of the limits; the message says which and where."""


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with a depth limit on the (recursive) composer."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                line = self.peek_event().start_mark.line + 1  # type: ignore[no-untyped-call]
                raise ConfigTooLarge(f"line {line}: nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _value_or_text(
    construct: Any,
) -> Any:
    """A constructor that gives the scalar's text when it cannot build the value (a date
    like 2026-13-45, an integer of 5000 digits): validation then names the setting."""

    def build(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
        try:
            return construct(loader, node)
        except ValueError:
            return loader.construct_scalar(node)

    return build


for _tag, _construct in (
    ("tag:yaml.org,2002:int", yaml.SafeLoader.construct_yaml_int),
    ("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_timestamp),
):
    _BoundedLoader.add_constructor(_tag, _value_or_text(_construct))


def load_yaml_file(path: Path) -> dict[str, Any]:
    """The mapping in a YAML file, refused if over the size, depth or expansion limits."""
    with path.open("rb") as handle:
        raw = handle.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigTooLarge(f"larger than {MAX_FILE_BYTES // 1024} KiB")
    try:
        loader = _BoundedLoader(raw.decode("utf-8"))
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except UnicodeDecodeError as error:
        raise UnreadableConfig(f"not UTF-8 text (byte {error.start})") from None
    except yaml.YAMLError as error:
        raise UnreadableConfig(_yaml_problem(error)) from None
    except UnreadableConfig:
        raise
    except ValueError as error:  # e.g. an integer of more digits than Python converts
        raise UnreadableConfig(f"a value cannot be read ({type(error).__name__})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigTooLarge("the file must hold a mapping of settings")
    _count_values(data)
    return data


def _yaml_problem(error: yaml.YAMLError) -> str:
    """Where and what, without PyYAML's snippet of the line: it may hold a secret."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or type(error).__name__
    if mark is None:
        return f"not valid YAML: {problem}"
    return f"not valid YAML: line {mark.line + 1}, column {mark.column + 1}: {problem}"


def _count_values(data: Any) -> None:
    """Walk the data as a validator will, aliases expanded, and stop at the budget."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(data, ())]
    seen = 0
    while stack:
        value, path = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            where = ".".join(path[:3]) or "the file"
            raise ConfigTooLarge(
                f"{where}: more than {MAX_VALUES} values once YAML aliases are expanded"
            )
        if isinstance(value, dict):
            stack.extend((item, (*path, str(key))) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((item, (*path, str(index))) for index, item in enumerate(value))


def check_json_depth(text: str) -> None:
    """Refuse JSON nested deeper than ``MAX_DEPTH`` (``json.loads`` would recurse on it)."""
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigTooLarge(f"nested deeper than {MAX_DEPTH} levels")
        elif char in "]}":
            depth -= 1
