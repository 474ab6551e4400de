"""Loading a YAML config file into a pydantic model, with errors that name file and key."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from hub.errors import ConfigError

__all__ = ["load_config_file"]

M = TypeVar("M", bound=BaseModel)


def load_config_file(path: Path, model: type[M], what: str) -> M:
    """``path`` parsed as ``model``; ConfigError names the file, the key and the reason."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} file: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise ConfigError(f"{path}: {where}: {first['msg']}") from None
