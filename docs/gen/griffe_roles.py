"""Griffe extension for the API reference: Sphinx cross-reference roles in hrnas docstrings become code.

hrnas docstrings use ``:class:`hrnas.Arch``` and ``:func:`search``` here and there (they read well in
``help()``); Markdown would show the role names. This rewrites them to inline code (```hrnas.Arch```).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|data|exc|obj|const):`~?([^`]+)`")


class SphinxRoles(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(r"`\1`", obj.docstring.value)
