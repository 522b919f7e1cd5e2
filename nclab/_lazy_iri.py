"""Defer the IRI grammars jsonschema loads at import until an IRI is actually validated.

plotly imports nbformat, which imports jsonschema, whose optional "iri" format checks import ``rfc3987_syntax``:
that package compiles 39 Earley grammars when imported — 1–4 s of every kernel's first ``import nclab.plots`` on
one CPU (measured inside a papermill kernel), for a check nclab never makes. ``install()`` puts a stand-in module
under that name before jsonschema is imported: its ``is_valid_syntax(term, value)`` (what jsonschema calls) and
any other attribute load the real package on first use, so IRI validation behaves exactly as before."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

NAME = "rfc3987_syntax"


class _StandIn(types.ModuleType):
    """Module object that becomes the real ``rfc3987_syntax`` the first time anything in it is used."""

    def __getattr__(self, attr: str):
        return getattr(real(), attr)


def real() -> types.ModuleType:
    """The real ``rfc3987_syntax`` package, imported now if only the stand-in is loaded."""
    if isinstance(sys.modules.get(NAME), _StandIn):
        del sys.modules[NAME]
    return importlib.import_module(NAME)


def is_valid_syntax(term: str, value: str) -> bool:
    """``rfc3987_syntax.is_valid_syntax``: does ``value`` parse as the RFC 3987 rule ``term``."""
    return real().is_valid_syntax(term, value)


def install() -> bool:
    """Register the stand-in if the package is installed and neither it nor jsonschema is loaded yet."""
    spec = None if NAME in sys.modules or "jsonschema" in sys.modules else importlib.util.find_spec(NAME)
    if spec is None:
        return False
    stand_in = _StandIn(NAME, __doc__)
    stand_in.__path__ = list(spec.submodule_search_locations or [])  # submodules import as usual
    stand_in.is_valid_syntax = is_valid_syntax
    sys.modules[NAME] = stand_in
    return True
