"""Finding Ray: the package, the machine's CPUs, a cluster address, and the connection.

Apart from :mod:`cluster.ray_executor` so that what only names or reaches a cluster (the
``--cluster`` value's check, the CPUs a local Ray gets) is read without the pool's code.
Ray itself is imported only when a connection is made (``import cluster`` stays cheap).
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

log = logging.getLogger("lakescore.cluster.ray")

INSTALL_HINT = "pip install 'lakescore[ray]'"

#: Results are small task records and scores never pass through the driver, so a local
#: Ray this process starts gets a small object store instead of Ray's 30% of memory.
LOCAL_OBJECT_STORE_BYTES = 256 * 2**20


def import_ray() -> Any:
    """The ``ray`` module; a missing package is a ``ValueError`` naming the extra."""
    try:
        import ray
    except ImportError as exc:
        raise ValueError(f"Ray is not installed ({INSTALL_HINT})") from exc
    return ray


def machine_cpus() -> int:
    """CPUs this process may use (its affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def connect(address: str | None, init_options: dict[str, Any]) -> bool:
    """Connect to the Ray at ``address``, or start a private local one (``None``).

    Returns whether this call made the connection (False: this process was connected
    already, and that Ray is used as it is). Raises ``ValueError`` when Ray is not
    installed and ``ConnectionError`` when the address cannot be reached.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"logging_level": logging.WARNING, **init_options}
    if address is None:
        # address="local": a private instance, never a cluster someone else started.
        options.setdefault("num_cpus", machine_cpus())
        options.setdefault("include_dashboard", False)
        options.setdefault("object_store_memory", LOCAL_OBJECT_STORE_BYTES)
        ray.init(address="local", **options)
        log.info("started a local Ray with %s CPU(s)", options["num_cpus"])
    else:
        check_reachable(address)
        ray.init(address=address, **options)
        log.info("connected to Ray at %s", address)
    return True


def is_ray_address(spec: str) -> bool:
    """Whether ``spec`` is ``HOST:PORT`` or ``ray://HOST:PORT`` (with a port number)."""
    host, sep, port = spec.removeprefix("ray://").rpartition(":")
    return bool(sep and host and "/" not in host and port.isdigit() and 0 < int(port) < 65536)


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast on an address nothing listens on (``ray.init`` waits minutes on it)."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConnectionError(f"cannot reach Ray at {address}: {exc}") from None
