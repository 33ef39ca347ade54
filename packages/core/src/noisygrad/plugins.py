"""Plugin discovery from installed distributions' metadata, without importing any plugin.

A plugin distribution (``noisygrad-pinn``, ``noisygrad-quantum``, ...) declares two kinds of entry point in
its ``pyproject.toml``::

    [project.entry-points."noisygrad.plugins"]
    quantum = "noisygrad.quantum"                                  # name = the plugin's package

    [project.entry-points."noisygrad.experiments"]
    "quantum.spsa-h2" = "noisygrad.quantum.experiments:spsa_h2"    # headline experiments for the tour

Everything :func:`available` reports (version, summary, field packages and whether they are installed,
experiments) comes from the distribution's metadata, so listing plugins never imports DeepXDE or Qiskit,
and a plugin whose field packages are missing is still listed, with the extra that installs them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ENTRY_POINT_GROUP = "noisygrad.plugins"
EXPERIMENT_GROUP = "noisygrad.experiments"
_CORE = canonicalize_name("noisygrad-core")


class MissingDependencyError(ImportError):
    """A plugin, or a field package it needs (DeepXDE, Qiskit Aer, ...), is not installed."""


def _installed(distribution: str) -> bool:
    try:
        metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


@dataclass(frozen=True)
class Plugin:
    """What an installed plugin declares, read from its distribution's metadata.

    Attributes:
        name: short name, also the root distribution's extra (``pip install 'noisygrad[<name>]'``).
        module: the plugin's package (``"noisygrad.quantum"``).
        summary: one line for ``noisygrad plugins``.
        requires: distribution names of the field packages it needs (``"qiskit-aer"``).
        experiments: experiment name -> ``"module:function"``; each function takes ``seed`` and ``quick``
            keyword arguments and returns a list of :class:`noisygrad.Finding`.
    """

    name: str
    module: str
    summary: str = ""
    requires: tuple[str, ...] = ()
    experiments: dict[str, str] = field(default_factory=dict)

    @property
    def extra(self) -> str:
        return f"pip install 'noisygrad[{self.name}]'"

    def missing(self) -> list[str]:
        """Field packages that are not installed (checked in metadata, nothing imported)."""
        return [r for r in self.requires if not _installed(r)]


@dataclass(frozen=True)
class PluginStatus:
    """An installed plugin, its distribution and version, and what it still lacks."""

    plugin: Plugin
    distribution: str
    version: str
    missing: tuple[str, ...]

    @property
    def usable(self) -> bool:
        return not self.missing


def _field_requirements(dist: metadata.Distribution) -> tuple[str, ...]:
    """Unconditional requirements of ``dist`` other than noisygrad-core."""
    names = []
    for line in dist.requires or []:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # test or optional extras are not field packages
        if canonicalize_name(req.name) != _CORE:
            names.append(req.name)
    return tuple(names)


def declared_experiments() -> dict[str, dict[str, str]]:
    """Every ``noisygrad.experiments`` entry point, by distribution: ``{distribution: {name: "module:function"}}``
    (the core declares its own there too, under ``noisygrad-core``)."""
    experiments: dict[str, dict[str, str]] = {}
    for ep in metadata.entry_points(group=EXPERIMENT_GROUP):
        dist_name = canonicalize_name(ep.dist.name) if ep.dist is not None else ""
        experiments.setdefault(dist_name, {})[ep.name] = ep.value
    return experiments


def core_experiments() -> dict[str, str]:
    """The core's own experiments, ``{name: "module:function"}``, from ``noisygrad-core``'s entry points."""
    return dict(declared_experiments().get(_CORE, {}))


def available() -> list[PluginStatus]:
    """Every installed plugin, sorted by name, with the field packages it is missing."""
    experiments = declared_experiments()
    found: dict[str, PluginStatus] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist
        if dist is None:
            continue
        if ep.name in found:
            raise RuntimeError(
                f"two distributions register the plugin {ep.name!r}: {found[ep.name].distribution} and "
                f"{dist.name}; uninstall one of them"
            )
        plugin = Plugin(
            name=ep.name,
            module=ep.value,
            summary=dist.metadata["Summary"] or "",
            requires=_field_requirements(dist),
            experiments=dict(sorted(experiments.get(canonicalize_name(dist.name), {}).items())),
        )
        found[ep.name] = PluginStatus(plugin, dist.name, dist.version, tuple(plugin.missing()))
    return [found[name] for name in sorted(found)]


def get(name: str) -> Plugin:
    """The :class:`Plugin` record of an installed plugin (nothing is imported)."""
    statuses = {s.plugin.name: s for s in available()}
    if name not in statuses:
        known = ", ".join(statuses) or "none"
        raise MissingDependencyError(
            f"no noisygrad plugin named {name!r} is installed (installed: {known}); "
            f"try: pip install 'noisygrad[{name}]' (from a clone of the repository: "
            f"pip install ./packages/core ./packages/{name} './[{name}]')"
        )
    return statuses[name].plugin


def require(plugin: Plugin | str) -> None:
    """Raise :class:`MissingDependencyError` naming the extra to install if a field package is missing.

    Plugins call ``require("<name>")`` first thing in their ``__init__``.
    """
    record = get(plugin) if isinstance(plugin, str) else plugin
    missing = record.missing()
    if missing:
        raise MissingDependencyError(
            f"{record.module} needs {', '.join(missing)}, which is not installed; install it with: "
            f"pip install {' '.join(missing)} (or the plugin's extra: {record.extra})"
        )


def load(name: str) -> ModuleType:
    """Import a plugin's package after checking that its field packages are installed."""
    plugin = get(name)
    require(plugin)
    return importlib.import_module(plugin.module)
