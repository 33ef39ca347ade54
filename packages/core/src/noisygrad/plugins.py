"""Plugin discovery through the ``noisygrad.plugins`` entry-point group.

Each plugin distribution (``noisygrad-pinn``, ``noisygrad-quantum``, ...) declares one entry point whose
value is a :class:`Plugin` record living in a module that imports nothing heavy. Listing plugins therefore
never imports DeepXDE or Qiskit; :func:`load` imports the plugin package only when it is asked for, and says
which extra to install when a field package is missing.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, entry_points, version
from types import ModuleType

ENTRY_POINT_GROUP = "noisygrad.plugins"


class MissingDependencyError(ImportError):
    """A plugin's field packages (DeepXDE, Qiskit Aer, ...) are not installed."""


@dataclass(frozen=True)
class Plugin:
    """What a plugin declares about itself, readable without importing it.

    Attributes:
        name: short name, also the subpackage (``noisygrad.<name>``) and the root distribution's extra.
        summary: one line for ``noisygrad plugins``.
        requires: import names of the field packages the plugin needs (``"qiskit_aer"``).
        experiments: experiment name -> ``"module:function"``; each function takes ``seed`` and ``quick``
            keyword arguments and returns a list of :class:`noisygrad.Finding`.
    """

    name: str
    summary: str
    requires: tuple[str, ...] = ()
    experiments: dict[str, str] = field(default_factory=dict)

    @property
    def module(self) -> str:
        return f"noisygrad.{self.name}"

    @property
    def extra(self) -> str:
        return f"pip install 'noisygrad[{self.name}]'"

    def missing(self) -> list[str]:
        """Field packages that cannot be found (checked without importing them)."""
        return [m for m in self.requires if importlib.util.find_spec(m) is None]


@dataclass(frozen=True)
class PluginStatus:
    """An installed plugin, its distribution version and what it still lacks."""

    plugin: Plugin
    distribution: str
    version: str
    missing: tuple[str, ...]

    @property
    def usable(self) -> bool:
        return not self.missing


def _plugin_from_entry_point(ep: object) -> tuple[Plugin, str, str]:
    plugin = ep.load()  # type: ignore[attr-defined]
    if not isinstance(plugin, Plugin):
        raise TypeError(
            f"entry point {ep.name!r} in group {ENTRY_POINT_GROUP!r} must point at a "  # type: ignore[attr-defined]
            f"noisygrad.plugins.Plugin, got {type(plugin).__name__}"
        )
    dist = ep.dist  # type: ignore[attr-defined]
    dist_name = dist.name if dist is not None else "?"
    try:
        dist_version = version(dist_name)
    except PackageNotFoundError:
        dist_version = "?"
    return plugin, dist_name, dist_version


def available() -> list[PluginStatus]:
    """Every installed plugin, sorted by name, with the field packages it is missing."""
    found: dict[str, PluginStatus] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        plugin, dist_name, dist_version = _plugin_from_entry_point(ep)
        if plugin.name in found:
            other = found[plugin.name].distribution
            raise RuntimeError(
                f"two distributions register the plugin {plugin.name!r}: {other} and {dist_name}; uninstall one of them"
            )
        found[plugin.name] = PluginStatus(plugin, dist_name, dist_version, tuple(plugin.missing()))
    return [found[name] for name in sorted(found)]


def get(name: str) -> Plugin:
    """The declared :class:`Plugin` record of an installed plugin (nothing heavy is imported)."""
    statuses = {s.plugin.name: s for s in available()}
    if name not in statuses:
        known = ", ".join(statuses) or "none"
        raise MissingDependencyError(
            f"no noisygrad plugin named {name!r} is installed (installed: {known}); "
            f"try: pip install 'noisygrad[{name}]'"
        )
    return statuses[name].plugin


def require(plugin: Plugin) -> None:
    """Raise :class:`MissingDependencyError` naming the extra to install if a field package is missing."""
    missing = plugin.missing()
    if missing:
        raise MissingDependencyError(
            f"noisygrad.{plugin.name} needs {', '.join(missing)}, which is not installed; "
            f"install it with: {plugin.extra}"
        )


def load(name: str) -> ModuleType:
    """Import ``noisygrad.<name>`` after checking that its field packages are installed."""
    plugin = get(name)
    require(plugin)
    return importlib.import_module(plugin.module)
