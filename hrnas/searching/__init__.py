"""The HR-NAS search as a library: fine-grained progressive shrinking of a supernet to a budget.

supernet = hrnas.create_supernet('seg', num_classes=19)
result = hrnas.search(supernet, train_set, val_set, budget='1.4G', input_size=(512, 512), epochs=50)
result.model      # a plain, static HRNASNet with the trained weights
result.save('runs/my_search')

The names below are imported when first used (torch and the training loop load only then), so that light modules
of this package (``hrnas.searching.recipes``, ``hrnas.searching.config``) can be imported quickly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# public name -> the module that defines it; ``__all__`` is made from it (tests/test_structure.py checks the
# TYPE_CHECKING imports against it)
_EXPORTS = {
    "Metric": "tasks",
    "SearchConfig": "config",
    "SearchError": "errors",
    "SearchResult": "result",
    "Task": "tasks",
    "create_supernet": "supernet",
    "get_task": "tasks",
    "RunView": "callbacks",
    "SearchCallback": "callbacks",
    "search": "entry",
    "train": "entry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hrnas.searching' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and IDEs (F401: __all__ is not a literal)
    from .callbacks import RunView, SearchCallback  # noqa: F401
    from .config import SearchConfig  # noqa: F401
    from .entry import search, train  # noqa: F401
    from .errors import SearchError  # noqa: F401
    from .result import SearchResult  # noqa: F401
    from .supernet import create_supernet  # noqa: F401
    from .tasks import Metric, Task, get_task  # noqa: F401
