"""A name -> class registry, as Cloud Custodian's `PluginRegistry`: `register(name)` files the
class under its name *and* sets the class's `type` to it, so each name is written once.

A registry may also know the module of a name it has not seen registered yet (`modules`): asked
for that name, it imports the module, whose `register` files the class. A cold start then creates
only the classes it uses (pydantic classes cost ~2 M instructions each to create)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    def __init__(
        self, plugin_type: str, attr: str = "type", modules: Mapping[str, str] | None = None
    ) -> None:
        self.plugin_type = plugin_type
        self.attr = attr
        self._factories: dict[str, T] = {}
        #: name -> the module that registers it, imported on the name's first use
        self._modules = dict(modules or {})

    def register(self, name: str) -> Callable[[T], T]:
        def deco(cls: T) -> T:
            if name in self._factories:
                raise ValueError(f"{self.plugin_type} {name!r} registered twice")
            setattr(cls, self.attr, name)
            self._factories[name] = cls
            return cls

        return deco

    def get(self, name: str) -> T | None:
        found = self._factories.get(name)
        if found is None and name in self._modules:
            importlib.import_module(self._modules[name])
            found = self._factories.get(name)
            if found is None:
                raise LookupError(f"{self._modules[name]} does not register {self.plugin_type} {name!r}")
        return found

    def __getitem__(self, name: str) -> T:
        found = self.get(name)
        if found is None:
            raise KeyError(f"unknown {self.plugin_type} {name!r}: use one of {', '.join(self.names())}")
        return found

    def __contains__(self, name: object) -> bool:
        return name in self._factories or name in self._modules

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def _names(self) -> dict[str, None]:
        return dict.fromkeys([*self._modules, *self._factories])

    def names(self) -> list[str]:
        return sorted(self._names())

    def items(self) -> list[tuple[str, T]]:
        """Every class, its module imported if need be."""
        return [(name, self[name]) for name in self._names()]
