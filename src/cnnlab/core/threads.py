"""One switch for the thread count of both NumPy's BLAS and PyTorch."""
from __future__ import annotations

from contextlib import contextmanager

from cnnlab.core.errors import CnnlabError


@contextmanager
def compute_threads(n: int | None):
    """Run NumPy's BLAS and PyTorch with ``n`` threads (``None``: leave both as they are).

    A 64-row batch makes matrices too small to split across threads: synchronising costs more
    than it saves, and on a busy machine spinning worker threads can slow a step tenfold. So the
    scratch commands default to one thread, for both frameworks alike (a fair comparison).
    """
    if n is None:
        yield
        return
    if n < 1:
        raise CnnlabError(f"--threads must be >= 1, got {n}")
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(n):
            yield
    finally:
        torch.set_num_threads(before)
