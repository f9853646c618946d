"""Each node agent holds a block of Pod addresses of its own: two agents on one machine never share an address."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from modelops.sandbox.node._network import PodNetwork


def test_two_claims_get_two_blocks_and_a_released_block_is_claimed_again(tmp_path: Path) -> None:
    first = PodNetwork.claim(tmp_path)
    second = PodNetwork.claim(tmp_path)
    try:
        assert (str(first.network), str(second.network)) == ("198.18.0.0/20", "198.18.16.0/20")
        assert first.allocate() not in second
        first.release()
        again = PodNetwork.claim(tmp_path)
        assert str(again.network) == "198.18.0.0/20"
        again.release()
    finally:
        first.release()
        second.release()


def test_a_block_held_by_another_process_is_skipped_and_freed_when_that_process_ends(tmp_path: Path) -> None:
    script = (
        "import sys\nfrom pathlib import Path\nfrom modelops.sandbox.node._network import PodNetwork\n"
        "net = PodNetwork.claim(Path(sys.argv[1]))\nprint(net.network, flush=True)\nsys.stdin.read()"
    )
    argv = [sys.executable, "-c", script, str(tmp_path)]
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "198.18.0.0/20"
            mine = PodNetwork.claim(tmp_path)
            assert str(mine.network) == "198.18.16.0/20"
            mine.release()
        finally:
            holder.kill()  # not a clean exit: the kernel still drops the lock
    after = PodNetwork.claim(tmp_path)
    assert str(after.network) == "198.18.0.0/20"
    after.release()


def test_a_freed_address_is_given_out_again_once_the_block_wraps() -> None:
    net = PodNetwork(7, None)
    given = net.allocate()
    net.free(given)
    assert net.allocate(given) == given
    assert net.allocate(given) != given
