"""Loading a YAML config file into a pydantic model, with errors that name file, line and key.

Every config file of a deployment (partners, users, agreements, alert rules) and a
connector's mapping goes through here (public: the SDK carries it), so a bad one always
stops with ``file:line: key: reason``. The reason is the rule broken, never the value:
YAML's own message quotes the file, which may hold a
token, so only its problem and line are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, SequenceNode

from hub.errors import ConfigError

__all__ = ["ConfigFileError", "config_error", "first_error", "load_config_file"]

M = TypeVar("M", bound=BaseModel)


class ConfigFileError(ConfigError):
    """A config file is invalid; ``line`` is None when YAML could not say where."""

    def __init__(self, path: Path, line: int | None, reason: str) -> None:
        self.path, self.line = path, line
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {reason}")


def load_config_file(path: Path, model: type[M], what: str) -> M:
    """``path`` parsed as ``model``; ConfigFileError names the file, line, key and reason."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigFileError(path, None, f"cannot read {what} file: {exc.strerror}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or type(exc).__name__
        line = mark.line + 1 if mark is not None else None
        raise ConfigFileError(path, line, f"not valid YAML: {problem}") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        line = _line_of(text, exc.errors(include_input=False)[0]["loc"])
        raise ConfigFileError(path, line, first_error(exc)) from None


def first_error(exc: ValidationError) -> str:
    """The first of ``exc``'s errors as ``key.path: rule``. Pydantic's input is left out:
    it would quote the value, which may be a token or a person's data."""
    first = exc.errors(include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    return f"{where}: {first['msg']}"


def config_error(path: Path, loc: Sequence[str | int], reason: str) -> ConfigFileError:
    """An error at the line of key path ``loc`` in ``path`` (a rule the model cannot see,
    such as an id defined in two files)."""
    try:
        text = path.read_text()
    except OSError:
        return ConfigFileError(path, None, reason)
    return ConfigFileError(path, _line_of(text, loc), reason)


def _line_of(text: str, loc: Sequence[str | int]) -> int | None:
    """The 1-based line of the deepest key or item of ``loc`` present in ``text`` (a missing
    key points at the mapping that lacks it); None when the text is not YAML."""
    try:
        node: Node | None = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        child = _child(node, part)
        if child is None:
            break
        line, node = child
    return line


def _child(node: Node, part: str | int) -> tuple[int, Node] | None:
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if key.value == str(part):
                return key.start_mark.line + 1, value
    if isinstance(node, SequenceNode) and isinstance(part, int) and part < len(node.value):
        item = node.value[part]
        return item.start_mark.line + 1, item
    return None
