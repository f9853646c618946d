"""The loopback block a node agent gives its Pods' addresses from, held by that agent alone.

Every Pod listens on its own loopback address, often on the same port as its neighbours (``PORT=8080``). Two agents
on one machine (two local clusters, a test worker each) must therefore never hand out the same address: each claims
a /16 of ``127.0.0.0/8`` for its life by an exclusive ``flock`` on a file named after the block. The kernel drops the
lock when the agent's process ends, however it ends, so a crashed agent never keeps a block.

The first block is ``127.0.0.0/16`` without ``127.0.0.x`` (where the host's own services listen), the next ones
``127.1.0.0/16``, ``127.2.0.0/16`` and so on.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import tempfile
from pathlib import Path

__all__ = ["PodNetwork"]

#: blocks tried in turn: 127.0.0.0/16 ... 127.254.0.0/16
BLOCKS = 255


class PodNetwork:
    """One claimed /16: :meth:`allocate` and :meth:`free` hand out its addresses; :meth:`release` gives it back."""

    def __init__(self, index: int, lock_fd: int | None) -> None:
        self.network = ipaddress.ip_network(f"127.{index}.0.0/16")
        self._lock_fd = lock_fd
        self._used: set[str] = set()
        #: offsets wrap around to here: 127.0.0.x stays the host's
        self._first = (1 << 8) if index == 0 else 0
        #: offset of the last address given out
        self._next = self._first

    @classmethod
    def claim(cls, lock_dir: Path | None = None) -> PodNetwork:
        """The first block no other agent on this machine holds."""
        directory = lock_dir or Path(tempfile.gettempdir()) / "modelops-pod-networks"
        directory.mkdir(parents=True, exist_ok=True)
        for index in range(BLOCKS):
            fd = os.open(directory / f"127.{index}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return cls(index, fd)
        raise RuntimeError(f"every loopback block 127.0-{BLOCKS - 1}.0.0/16 is held by another node agent")

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
        >>> net.allocate(), net.allocate("127.3.9.9"), net.allocate("127.3.9.9"), net.allocate("10.0.0.1")
        ('127.3.0.1', '127.3.9.9', '127.3.0.2', '127.3.0.3')
        >>> PodNetwork(0, None).allocate()
        '127.0.1.1'
        """
        if wanted and wanted not in self._used and wanted in self:
            self._used.add(wanted)
            return wanted
        size = self.network.num_addresses
        for _ in range(size):
            self._next = self._next + 1 if self._next + 1 < size - 1 else self._first
            candidate = str(self.network.network_address + self._next)
            if candidate not in self._used and not candidate.endswith((".0", ".255")):
                self._used.add(candidate)
                return candidate
        raise RuntimeError(f"no pod address left in {self.network}")

    def free(self, address: str) -> None:
        self._used.discard(address)
