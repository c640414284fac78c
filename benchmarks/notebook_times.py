"""Seconds each example notebook takes top to bottom in quick mode (goal: under a minute each).

    python benchmarks/notebook_times.py [--out benchmarks/results/notebook_times.json]

The tests execute the same notebooks; timing them there would make a slow machine fail a test,
so the figure lives here.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import nbclient
import nbformat

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/notebook_times.json"))
    args = parser.parse_args()
    os.environ.update(CNNLAB_QUICK="1", MPLBACKEND="Agg")
    rows = []
    for path in sorted((ROOT / "examples").glob("*.ipynb")):
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["CNNLAB_EXAMPLES_OUT"] = tmp
            nb = nbformat.read(path, as_version=4)
            start = time.perf_counter()
            nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                    resources={"metadata": {"path": tmp}}).execute()
            rows.append({"notebook": path.name, "seconds": round(time.perf_counter() - start, 1)})
        print(f"{rows[-1]['notebook']:55s} {rows[-1]['seconds']:7.1f} s")
    Path(args.out).write_text(json.dumps({"quick": True, "cpus": os.cpu_count(), "rows": rows}, indent=1))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
