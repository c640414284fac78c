"""CLI: ``cnnlab demo [--checkpoint CK | --model efficientnet-lite0-imagenet] [--port P]``."""
from __future__ import annotations

import argparse

from cnnlab.cli.types import device, int_range


def cmd_demo(args: argparse.Namespace) -> None:
    from cnnlab.demo.server import load_demo, make_server

    from cnnlab.core.errors import CnnlabError

    demo = load_demo(args.checkpoint, args.model, args.device)
    try:
        server = make_server(demo, "127.0.0.1", args.port)
    except OSError as exc:  # the port is taken, or below 1024 without the right
        raise CnnlabError(f"--port {args.port}: {exc.strerror or exc}") from None
    host, port = server.server_address[:2]
    print(f"cnnlab demo of {demo.name} ({demo.task}) on http://{host}:{port}/  (Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="a local web page: upload an image, see top-5, a CAM, FGSM (or a mask)",
                       description="Serve a page on 127.0.0.1 where one uploads an image: a classifier shows its "
                                   "top-5 classes, a class activation map (method of your choice) and an FGSM "
                                   "adversarial image (epsilon slider); a segmenter shows its mask over the image. "
                                   "Nothing leaves the machine: the page loads nothing from the network.")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--checkpoint", help="a cnnlab classifier or segmenter checkpoint")
    g.add_argument("--model", help="efficientnet-lite0-imagenet (default, offline ImageNet weights) or "
                                   "torchvision:<name> (weights downloaded when a network exists)")
    p.add_argument("--port", type=int_range(0, 65535), default=7860, help="port on 127.0.0.1 (0: any free port)")
    p.add_argument("--device", type=device, default="cpu")
    p.set_defaults(func=cmd_demo)
