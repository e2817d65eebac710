"""Third-party plugins: modules named in the `mlconvert.plugins` entry-point group.

Importing a plugin is all it takes: it calls register_format / register_edge at its
bottom, like the built-in modules. Both registries load plugins once, after their
own modules, so a plugin format is sniffed and a plugin edge is planned.
"""
from __future__ import annotations

import importlib.metadata
import warnings

GROUP = "mlconvert.plugins"
_loaded = False
FAILED: dict[str, str] = {}  # plugins that failed to import, and why (doctor shows them)


def entry_points():
    return importlib.metadata.entry_points(group=GROUP)


def load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for entry in entry_points():
        try:
            entry.load()
        except Exception as exc:  # a broken plugin must not break the tool
            FAILED[entry.name] = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"mlconvert plugin {entry.name!r} failed to load: {exc}", stacklevel=2)
