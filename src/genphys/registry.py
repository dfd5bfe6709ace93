"""Name -> class maps filled by decorators; the CLI and run loading use them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from genphys.errors import GenphysError

T = TypeVar("T")

MODELS: dict[str, type] = {}
OBJECTIVES: dict[str, type] = {}


def _register(table: dict[str, type], kind: str, name: str) -> Callable[[type[T]], type[T]]:
    def decorator(cls: type[T]) -> type[T]:
        if name in table and table[name] is not cls:
            raise ValueError(f"{kind} {name!r} is registered twice")
        table[name] = cls
        cls.registry_name = name  # type: ignore[attr-defined]
        return cls

    return decorator


def register_model(name: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: make a model buildable by name (it must define ``Config``)."""
    return _register(MODELS, "model", name)


def register_objective(name: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: make a training objective buildable by name."""
    return _register(OBJECTIVES, "objective", name)


def lookup(table: dict[str, type], name: str, kind: str) -> Any:
    import genphys.models
    import genphys.training  # noqa: F401  (fills OBJECTIVES)

    if not isinstance(name, str) or name not in table:
        raise GenphysError(f"unknown {kind} {name!r}; choose from {sorted(table)}")
    return table[name]
