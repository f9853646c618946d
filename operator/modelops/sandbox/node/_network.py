"""The block of Pod addresses a node agent gives out, held by that agent alone, and routed to this machine.

Every Pod listens on an address of its own, often on the same port as its neighbours (``PORT=8080``), as on a
cluster network. The addresses come from ``198.18.0.0/15`` (RFC 2544's benchmarking range: never routed on the
internet, seldom used on a host), which :func:`ensure_local_route` makes local to this machine with one route
(``ip route replace local 198.18.0.0/15 dev lo``): a process binds any address of it and every process here
reaches it, as with ``127.0.0.0/8``. Loopback addresses will not do: the API server refuses them in EndpointSlices
(``may not be in the loopback range``), and a Gateway API data plane such as Traefik reads a Service's endpoints
from its EndpointSlices. Adding the route needs root (CAP_NET_ADMIN); it stays until the machine restarts.

Two agents on one machine (two local clusters, a test worker each) must never hand out the same address: each
claims a /20 of the range (4,094 addresses) for its life by an exclusive ``flock`` on a file named after the block.
The kernel drops the lock when the agent's process ends, however it ends, so a crashed agent never keeps a block.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["POD_RANGE", "PodNetwork", "ensure_local_route"]

#: every agent's Pod addresses come from here
POD_RANGE = ipaddress.IPv4Network("198.18.0.0/15")
#: the size of one agent's block
BLOCK_PREFIX = 20
BLOCKS = 2 ** (BLOCK_PREFIX - POD_RANGE.prefixlen)


def ensure_local_route(network: ipaddress.IPv4Network = POD_RANGE) -> None:
    """Make ``network`` local to this machine (idempotent); a clear error when that is not allowed, or when the
    machine already routes part of it somewhere (a VPN or a proxy's fake-IP range use 198.18.0.0/15 too)."""
    ip = shutil.which("ip")
    if ip is None:
        raise RuntimeError("the node agent needs `ip` (Debian package iproute2) to route its Pod addresses")
    shown = subprocess.run([ip, "route", "show", "table", "local", str(network)], capture_output=True, text=True)
    if shown.returncode == 0 and str(network) in shown.stdout:
        return
    routed = subprocess.run([ip, "-o", "route", "show", "table", "all", "match", str(network.network_address)],
                            capture_output=True, text=True, check=False)  # fmt: skip
    taken = [
        line for line in routed.stdout.splitlines() if line and not line.startswith(("default", "local ", "broadcast "))
    ]
    if taken:
        raise RuntimeError(
            f"the node agent's Pod range {network} is routed on this machine already ({taken[0].strip()}); "
            "it will not take it over"
        )
    command = [ip, "route", "replace", "local", str(network), "dev", "lo"]
    if os.geteuid() != 0 and shutil.which("sudo"):
        command = ["sudo", "-n", *command]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"the node agent could not make its Pod range {network} local to this machine "
            f"(`ip route replace local {network} dev lo`, which needs root): {done.stderr.strip()}"
        )


class PodNetwork:
    """One claimed block: :meth:`allocate` and :meth:`free` hand out its addresses; :meth:`release` gives it back."""

    def __init__(self, index: int, lock_fd: int | None) -> None:
        self.network: ipaddress.IPv4Network = list(POD_RANGE.subnets(new_prefix=BLOCK_PREFIX))[index]
        self._lock_fd = lock_fd
        self._used: set[str] = set()
        #: offset of the last address given out (0 is the block's network address)
        self._next = 0

    @classmethod
    def claim(cls, lock_dir: Path | None = None) -> PodNetwork:
        """The first block no other agent on this machine holds."""
        directory = lock_dir or Path(tempfile.gettempdir()) / "modelops-pod-networks"
        directory.mkdir(parents=True, exist_ok=True)
        for index, block in enumerate(POD_RANGE.subnets(new_prefix=BLOCK_PREFIX)):
            name = str(block).replace("/", "_")
            fd = os.open(directory / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return cls(index, fd)
        raise RuntimeError(f"every block of {POD_RANGE} (/{BLOCK_PREFIX}) is held by another node agent")

    def release(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None

    def __contains__(self, address: str) -> bool:
        return ipaddress.ip_address(address) in self.network

    def allocate(self, wanted: str | None = None) -> str:
        """``wanted`` (a Pod's address before a restart) when it is in this block and free, else the next free one.

        >>> net = PodNetwork(3, None)
        >>> net.allocate(), net.allocate("198.18.48.9"), net.allocate("198.18.48.9"), net.allocate("10.0.0.1")
        ('198.18.48.1', '198.18.48.9', '198.18.48.2', '198.18.48.3')
        """
        if wanted and wanted not in self._used and wanted in self:
            self._used.add(wanted)
            return wanted
        size = self.network.num_addresses
        for _ in range(size):
            # 1 .. size-2: neither the block's network nor its broadcast address
            self._next = self._next + 1 if self._next + 1 < size - 1 else 1
            candidate = str(self.network.network_address + self._next)
            if candidate not in self._used:
                self._used.add(candidate)
                return candidate
        raise RuntimeError(f"no pod address left in {self.network}")

    def free(self, address: str) -> None:
        self._used.discard(address)
