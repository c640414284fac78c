"""Atomic writes: the permissions a user's umask gives, and temporary names no user file shares."""
from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from cnnlab.core.fileio import atomic_path, remove_stale_temps


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    target = tmp_path / "report.json"
    code = ("import os, sys; os.umask(int(sys.argv[1], 8)); from cnnlab.core.fileio import write_json; "
            "write_json(sys.argv[2], {'a': 1})")
    subprocess.run([sys.executable, "-c", code, oct(umask), str(target)], check=True)
    assert stat.S_IMODE(os.stat(target).st_mode) == mode


def test_a_killed_write_leaves_a_marked_temp_that_cleanup_removes_and_nothing_else(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(tmp_path / "last.ckpt") as tmp:
            leftover = tmp.name
            tmp.write_bytes(b"half")
            os.link(tmp, tmp_path / (leftover + "x"))  # keep a copy, as a kill -9 would leave it
            raise KeyboardInterrupt
    (tmp_path / (leftover + "x")).rename(tmp_path / leftover)
    mine = [tmp_path / "notes.abcd1234.tmp", tmp_path / "last.ckpt.abcd1234.tmp"]
    for p in mine:
        p.write_text("a user's file")
    assert remove_stale_temps(tmp_path) == [tmp_path / leftover]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in mine)
