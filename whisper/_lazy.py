"""Packages whose names load their modules on first use (PEP 562), so importing stays cheap."""
from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, List, Mapping, Tuple


def lazy_names(package: str, homes: Mapping[str, str]) -> Tuple[Callable[[str], Any], Callable[[], List[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: each name in ``homes`` comes from the submodule
    it maps to; any other name that is a submodule's is that submodule, imported then."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            try:
                return importlib.import_module(f".{name}", package)
            except ModuleNotFoundError as error:
                if error.name != f"{package}.{name}":
                    raise
                raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(f".{home}", package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> List[str]:
        return sorted(homes)

    return __getattr__, __dir__
