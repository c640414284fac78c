"""The suite's own bookkeeping: the quick command's list of slow tests names tests that exist."""
from __future__ import annotations

from tests.conftest import COLLECTED, SLOW


def test_every_listed_slow_test_exists(request):
    """An id left in ``SLOW`` after its test was renamed would quietly put the test back in the quick run."""
    assert request.node.nodeid in COLLECTED  # the hook filled the set this module reads
    files = {nodeid.split("::")[0] for nodeid in COLLECTED}
    stale = sorted(nodeid for nodeid in SLOW if nodeid.split("::")[0] in files and nodeid not in COLLECTED)
    assert stale == []
