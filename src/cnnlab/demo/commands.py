"""CLI: ``cnnlab demo [--checkpoint CK | --model efficientnet-lite0-imagenet] [--port P]``."""
from __future__ import annotations

import argparse

from cnnlab.cli.types import device, int_range


def cmd_demo(args: argparse.Namespace) -> None:
    from cnnlab.core.errors import CnnlabError
    from cnnlab.core.log import log
    from cnnlab.demo.server import check_host, is_loopback, load_demo, make_server

    check_host(args.host)
    if not is_loopback(args.host):  # said before the model loads, so it cannot scroll away unseen
        log.warning(f"--host {args.host}: the demo is reachable from other machines; anyone who can reach "
                    f"port {args.port} can run the model on their images (it has no login). Use the default "
                    f"127.0.0.1 to keep it on this machine.")
    demo = load_demo(args.checkpoint, args.model, args.device)
    try:
        server = make_server(demo, args.host, args.port)
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
                       description="Serve a page (on 127.0.0.1 unless --host) where one drops, pastes, uploads or picks "
                                   "an example image: a classifier shows its "
                                   "top-5 classes, a class activation map (method of your choice) and an FGSM "
                                   "adversarial image (epsilon slider); a segmenter shows its mask over the image. "
                                   "Nothing leaves the machine: the page loads nothing from the network.")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--checkpoint", help="a cnnlab classifier or segmenter checkpoint")
    g.add_argument("--model", help="efficientnet-lite0-imagenet (default, offline ImageNet weights) or "
                                   "torchvision:<name> (weights downloaded when a network exists)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on: 127.0.0.1 keeps the page on this machine; 0.0.0.0 serves every "
                        "network interface (with a warning: the demo has no login)")
    p.add_argument("--port", type=int_range(0, 65535), default=7860, help="port to listen on (0: any free port)")
    p.add_argument("--device", type=device, default="cpu", help="where the model runs")
    p.set_defaults(func=cmd_demo)
