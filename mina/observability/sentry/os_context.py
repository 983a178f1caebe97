"""The ``os`` context of Sentry events: the operating system Mina runs on.

The SDK adds the runtime (Python) but not the operating system. `os_context` reads it once
from `platform`, in the fields of Sentry's OS context: ``name`` and ``version`` of the
system (the distribution's, from ``/etc/os-release``, on Linux), ``kernel_version``, and
``raw``, the one-line description Sentry falls back on.
"""

from __future__ import annotations

import platform

__all__ = ["os_context"]


def _raw(system: str) -> str:
    # platform.platform()'s one line without its processor field: on Linux that field
    # runs `uname -p` in a subprocess, which the SDK's stdlib integration records as a
    # breadcrumb on top of every event of a script (and which says nothing `machine`
    # does not).
    raw = f"{system}-{platform.release()}-{platform.machine()}"
    if system == "Linux":
        lib, version = platform.libc_ver()
        if lib:
            raw += f"-with-{lib}{version}"
    return raw


def os_context() -> dict[str, str]:
    """The running operating system as Sentry's ``os`` context."""
    system = platform.system()
    context = {
        "name": system,
        "version": platform.release(),
        "kernel_version": platform.release(),
        "raw": _raw(system),
    }
    if system == "Darwin":
        context["version"] = platform.mac_ver()[0] or context["version"]
    elif system == "Linux":
        try:
            release = platform.freedesktop_os_release()
        except OSError:  # no /etc/os-release (some containers): the kernel says enough
            pass
        else:
            context["name"] = release.get("NAME", system)
            context["version"] = release.get("VERSION_ID", context["version"])
    elif system == "Windows":
        context["kernel_version"] = platform.version()
    return context
