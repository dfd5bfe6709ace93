"""Dataclass configs with dict/JSON round trips and checks in ``__post_init__``.

Every model, objective and the trainer carry a config that subclasses :class:`Config`;
the run directory stores them as JSON so a run can be rebuilt from the directory alone.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from genphys.errors import GenphysError

C = TypeVar("C", bound="Config")


def _coerce(value: Any, hint: Any, name: str) -> Any:
    """Convert a JSON/YAML value to the annotated type (tuples, floats from ints, optionals)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], name) if len(inner) == 1 else value
    if origin is typing.Literal:
        if value not in args:
            raise GenphysError(f"{name} must be one of {list(args)}, got {value!r}")
        return value
    if hint in (int, float) and isinstance(value, bool):  # True is an int to Python
        raise GenphysError(f"{name} must be {hint.__name__}, got {value!r}")
    if hint is float and isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
        try:
            return float(value)
        except ValueError:
            raise GenphysError(f"{name} must be float, got {value!r}") from None
    if hint is float and isinstance(value, (int, float)):
        return float(value)
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise GenphysError(f"{name} must be a list, got {value!r}")
        inner = [a for a in args if a is not Ellipsis]
        if Ellipsis not in args and len(value) != len(inner):
            raise GenphysError(f"{name} must have {len(inner)} entries, got {len(value)}")
        return tuple(
            _coerce(v, inner[0] if len(inner) == 1 else inner[i], f"{name}[{i}]")
            for i, v in enumerate(value)
        )
    if hint in (int, float, str, bool) and not isinstance(value, hint):
        if not (hint is float and isinstance(value, int)):
            raise GenphysError(f"{name} must be {hint.__name__}, got {value!r}")
    return value


@dataclasses.dataclass
class Config:
    """Base class: ``to_dict``/``from_dict``, JSON I/O and unknown-key checks."""

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        if not isinstance(data, dict):
            raise GenphysError(f"{cls.__name__} expects a mapping, got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise GenphysError(
                f"unknown {cls.__name__} option(s) {unknown}; known: {sorted(fields)}"
            )
        hints = typing.get_type_hints(cls)
        kwargs = {k: _coerce(v, hints[k], f"{cls.__name__}.{k}") for k, v in data.items()}
        return cls(**kwargs)

    @classmethod
    def given(cls: type[C], config: Any, settings: dict[str, Any]) -> C:
        """A model's configuration: ``config`` itself, or one made from keyword ``settings``
        (``Model(config)`` or ``Model(**settings)``); both at once is an error, not a choice."""
        if config is None:
            unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(cls)})
            if unknown:
                raise GenphysError(f"unknown {cls.__name__} option(s) {unknown}")
            return cls(**settings)
        if settings:
            raise GenphysError(
                f"give either a {cls.__name__} or its settings {sorted(settings)}, not both"
            )
        if type(config) is not cls:  # a subclass holds settings this model would ignore
            raise GenphysError(f"expected a {cls.__name__}, got {type(config).__name__}")
        return config


def check(condition: bool, message: str) -> None:
    """Raise :class:`GenphysError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise GenphysError(message)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON configuration file into a dict (one clear error if unreadable)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GenphysError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise GenphysError(f"config file {path} is not UTF-8 text") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text, object_pairs_hook=_unique_keys)
        else:
            import yaml

            data = yaml.load(text, Loader=_unique_key_loader())  # a SafeLoader
    except GenphysError as exc:
        raise GenphysError(f"config file {path}: {exc}") from None
    except Exception as exc:  # yaml and json raise several types
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise GenphysError(f"config file {path} is not valid YAML/JSON: {first}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise GenphysError(f"config file {path} must hold a mapping at the top level")
    return data


def _unique_keys(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    """A mapping from ``pairs``; a key given twice is an error (JSON and YAML would silently
    keep the last value, so a setting written twice would be half ignored)."""
    out: dict[Any, Any] = {}
    for key, value in pairs:
        if key in out:
            raise GenphysError(f"key {key!r} is given twice")
        out[key] = value
    return out


@functools.cache
def _unique_key_loader() -> type:
    """yaml's SafeLoader, refusing a key written twice in one mapping (a key merged in with
    ``<<`` may still be overridden, as YAML intends)."""
    import yaml

    class Loader(yaml.SafeLoader):
        def flatten_mapping(self, node: Any) -> None:
            # each mapping's own keys, checked once, before merges (<<) are folded into them
            checked = self.__dict__.setdefault("_checked", set())
            if id(node) not in checked:
                checked.add(id(node))
                own = [k for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"]
                _unique_keys([(self.construct_object(k, deep=True), None) for k in own])
            super().flatten_mapping(node)

    return Loader
