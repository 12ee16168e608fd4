"""Registering the hrnas models with timm without importing timm (or torch) when hrnas is imported.

``import hrnas`` must stay quick (torch and timm take seconds to import), yet ``timm.create_model('hrnas_...')``
after ``import hrnas`` must find the models. timm has no plugin mechanism, so hrnas registers itself at the moment
timm is imported: at once when timm is already loaded, otherwise from a one-shot import hook that runs
:mod:`hrnas.zoo` right after timm's own package has been executed, and then removes itself.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings

__all__ = ["register_with_timm"]


def _register() -> None:
    try:
        importlib.import_module("hrnas.zoo")
    except Exception as e:  # an hrnas failure must not break `import timm`
        warnings.warn(f"hrnas could not register its models with timm: {type(e).__name__}: {e}", stacklevel=2)


class _RegisterAfter(importlib.abc.Loader):
    """Wraps timm's loader for one import: execute timm, put its own loader back, then register."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        try:
            self.loader.exec_module(module)
        finally:
            module.__loader__ = self.loader
            if module.__spec__ is not None:
                module.__spec__.loader = self.loader
        _register()

    def __getattr__(self, name):  # anything else a loader offers (resources, file names) is timm's own
        return getattr(self.loader, name)


class _TimmImportHook(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != "timm":
            return None
        sys.meta_path.remove(self)  # one shot; also keeps the find_spec below from finding this hook again
        spec = importlib.util.find_spec("timm")
        if spec is not None and spec.loader is not None:
            spec.loader = _RegisterAfter(spec.loader)
        return spec


def register_with_timm() -> None:
    """Make timm see the hrnas models: now if timm is loaded, else as soon as it is."""
    if "timm" in sys.modules:
        _register()
    elif not any(isinstance(f, _TimmImportHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _TimmImportHook())
