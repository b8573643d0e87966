"""A name -> class registry, as Cloud Custodian's `PluginRegistry`: `register(name)` files the
class under its name *and* sets the class's `type` to it, so each name is written once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    def __init__(self, plugin_type: str, attr: str = "type") -> None:
        self.plugin_type = plugin_type
        self.attr = attr
        self._factories: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(cls: T) -> T:
            if name in self._factories:
                raise ValueError(f"{self.plugin_type} {name!r} registered twice")
            setattr(cls, self.attr, name)
            self._factories[name] = cls
            return cls

        return deco

    def get(self, name: str) -> T | None:
        return self._factories.get(name)

    def __getitem__(self, name: str) -> T:
        found = self._factories.get(name)
        if found is None:
            raise KeyError(f"unknown {self.plugin_type} {name!r}: use one of {', '.join(self.names())}")
        return found

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(self._factories)

    def __len__(self) -> int:
        return len(self._factories)

    def names(self) -> list[str]:
        return sorted(self._factories)

    def items(self) -> list[tuple[str, T]]:
        return list(self._factories.items())
