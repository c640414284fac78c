"""CLI: ``cnnlab report RUN_DIR [RUN_DIR ...] [--out report.html]``."""
from __future__ import annotations

import argparse


def cmd_report(args: argparse.Namespace) -> None:
    from cnnlab.report.html import write_report

    path = write_report(args.runs, args.out)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, self-contained: open it in any browser)")


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="one self-contained HTML report of a run folder, or a comparison of several",
                       description="Any cnnlab output folder (train, segment train, evaluate --out, scratch, lab, "
                                   "explain, attack): metrics, curves, tables and figures in one HTML file with the "
                                   "images embedded. Several folders: one comparison page (curves overlaid, "
                                   "metrics side by side, the settings that differ).")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders")
    p.add_argument("--out", help="HTML file (default: RUN_DIR/report.html for one folder, ./comparison.html for several)")
    p.set_defaults(func=cmd_report)
