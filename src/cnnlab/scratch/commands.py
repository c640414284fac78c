"""CLI for the from-scratch networks: ``cnnlab scratch mlp|cnn|suite|linreg|check``."""
from __future__ import annotations

import argparse
import math
import os

from cnnlab.core import bounds
from cnnlab.cli.options import OVERWRITE, PROGRESS
from cnnlab.cli.types import fraction, positive_float, positive_int, seed


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="fashion-mnist", help="fashion-mnist (default), mnist or digits (embedded)")
    p.add_argument("--data-dir", default=os.environ.get("CNNLAB_DATA"),
                   help="folder holding the dataset (default: $CNNLAB_DATA)")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--seed", type=seed, default=0, help="initial weights and batch order")
    p.add_argument("--threads", type=bounds.threads, default=1,
                   help="BLAS/PyTorch threads (default 1: small batches gain nothing from more)")
    PROGRESS.add_to(p)


# what load_arrays gives for the datasets the scratch commands name: (C, H, W), training images, classes;
# their memory is checked before the data loads, another dataset's once it has loaded
KNOWN_DATA = {"digits": ((1, 8, 8), 1437, 10), "mnist": ((1, 28, 28), 60000, 10),
              "fashion-mnist": ((1, 28, 28), 60000, 10)}
DEFAULTS = {"mlp": dict(hidden=[128, 64], batch_size=64), "cnn": dict(channels=[32, 64], kernel=3, hidden=[128],
                                                                     batch_size=64)}


def check_memory(args: argparse.Namespace, network: str, image: tuple[int, ...], n_train: int, classes: int) -> None:
    """The network's weights, then one training step, against the memory free (core.bounds): a
    width, kernel or batch too large is refused before anything is written, naming the option."""
    from cnnlab.core import bounds

    def estimate(o: dict, part: int) -> int:
        batch = min(o["batch_size"], n_train)  # a batch above the training set is the whole set
        if network == "mlp":
            return bounds.scratch_mlp_bytes([math.prod(image), *o["hidden"], classes], batch, args.optimizer)[part]
        return bounds.scratch_cnn_bytes(image, o["channels"], o["kernel"], o["hidden"], classes, batch,
                                        args.optimizer)[part]

    given = {name: getattr(args, name) for name in DEFAULTS[network]}
    bounds.check(lambda o: estimate(o, 0), given, DEFAULTS[network], "the weights alone need")
    bounds.check(lambda o: estimate(o, 1), given, DEFAULTS[network], "a training step needs")


def _train(cfg, args: argparse.Namespace, network: str, label: str) -> None:
    """Train ``cfg`` on ``args.dataset``, write the run folder, print one line of final figures."""
    from cnnlab.scratch.experiments import load_arrays, run_training
    from cnnlab.core.threads import compute_threads

    known = KNOWN_DATA.get(args.dataset)
    if known:
        check_memory(args, network, *known)
    data = load_arrays(args.dataset, args.data_dir)
    if not known:
        check_memory(args, network, data.image_shape, len(data.x_train), len(data.classes))
    with compute_threads(args.threads):
        result = run_training(cfg, data, args.out, progress=args.progress)
    f = result["final"]
    print(f"{args.framework} {label} {cfg.label()} lr={cfg.lr:g}: "
          f"train acc {f['train_accuracy']:.4f} loss {f['train_loss']:.4f} | test acc {f['test_accuracy']:.4f} "
          f"loss {f['test_loss']:.4f} | {result['train_seconds']:.1f} s -> {args.out}/metrics.json, curves.png")


def _run_options(args: argparse.Namespace) -> dict:
    return dict(optimizer=args.optimizer, lr=args.lr, momentum=args.momentum, batch_size=args.batch_size,
                epochs=args.epochs, schedule=args.schedule, seed=args.seed, framework=args.framework)


def cmd_mlp(args: argparse.Namespace) -> None:
    from cnnlab.scratch.experiments import MLPConfig

    cfg = MLPConfig(hidden=tuple(args.hidden), activation=args.activation, init=args.init, **_run_options(args))
    _train(cfg, args, "mlp", f"MLP {'-'.join(map(str, cfg.hidden))}")


def cmd_cnn(args: argparse.Namespace) -> None:
    from cnnlab.scratch.experiments import CNNConfig

    cfg = CNNConfig(channels=tuple(args.channels), kernel=args.kernel, hidden=tuple(args.hidden), pool=args.pool,
                    **_run_options(args))
    _train(cfg, args, "cnn", f"kernel {cfg.kernel}, {cfg.pool}-pool, dense {'-'.join(map(str, cfg.hidden))},")


def _training(p: argparse.ArgumentParser) -> None:
    """Options of one training run (``mlp`` and ``cnn``)."""
    p.add_argument("--optimizer", default="momentum", help="sgd, momentum (default), nesterov or adam")
    p.add_argument("--lr", type=positive_float, default=None,
                   help="learning rate (default: 0.1 for sgd, 0.05 with momentum, 0.001 for adam)")
    p.add_argument("--momentum", type=fraction, default=0.9, help="in [0, 1)")
    p.add_argument("--schedule", default="linear",
                   help="linear (default: lr decays to lr/E in the last epoch) or constant")
    p.add_argument("--framework", default="numpy", help="numpy (default) or torch (the PyTorch twin)")
    p.add_argument("--out", required=True, help="run folder")
    OVERWRITE.add_to(p)


def cmd_suite(args: argparse.Namespace) -> None:
    from cnnlab.scratch.experiments import load_arrays, run_suite, suite_table
    from cnnlab.core.threads import compute_threads

    data = load_arrays(args.dataset, args.data_dir)
    with compute_threads(args.threads):
        rows = run_suite(data, args.out, args.epochs, args.batch_size, args.seed, args.variants,
                         progress=args.progress)
    print(suite_table(rows))
    print(f"-> {args.out}/suite.json, suite.md, curves.png, grid.png")


def cmd_linreg(args: argparse.Namespace) -> None:
    from cnnlab.scratch.linreg import linreg_table, run_linreg
    from cnnlab.core.threads import compute_threads

    # the largest problem asked for, against the memory free, naming the option most to blame
    problems = [({"n": n, "d_fixed": args.d_fixed}) for n in args.n] + \
               [({"n_fixed": args.n_fixed, "d": d}) for d in args.d]
    bounds.check(lambda o: bounds.linreg_bytes(*o.values()), max(problems, key=lambda o: bounds.linreg_bytes(*o.values())),
                 {"n": 8000, "d_fixed": 100, "n_fixed": 8000, "d": 100}, "the largest problem needs")
    with compute_threads(args.threads):
        rows = run_linreg(args.out, args.n, args.d, args.n_fixed, args.d_fixed, args.steps, args.repeats, args.seed)
    print(linreg_table(rows))
    print(f"-> {args.out}/linreg.json, linreg.png")


def cmd_check(args: argparse.Namespace) -> None:
    from cnnlab.scratch.checks import run_checks

    run_checks(args.out, seed=args.seed, verbose=True)


def add_commands(sub: argparse._SubParsersAction) -> None:
    scratch = sub.add_parser("scratch", help="networks from scratch in NumPy (MLP, CNN, backprop, linear regression)")
    ssub = scratch.add_subparsers(dest="scratch_command", metavar="<scratch command>", required=True)

    p = ssub.add_parser("mlp", help="train the NumPy MLP; writes metrics.json and curves.png")
    _common(p)
    _training(p)
    p.add_argument("--hidden", type=positive_int, nargs="+", default=[128, 64], help="hidden layer sizes (default 128 64)")
    p.add_argument("--activation", default="relu", help="sigmoid, tanh, relu (default) or identity (linear hidden layers, "
                                                         "002 Q4b: the net is then multinomial logistic regression)")
    p.add_argument("--init", default=None, help="xavier, he, normal (N(0, 0.01²)), unit-normal (N(0, 1)) or zero "
                                                "(default: xavier for sigmoid, tanh and identity, he for relu)")
    p.set_defaults(func=cmd_mlp)

    p = ssub.add_parser("cnn", help="train the NumPy CNN (conv blocks + dense, hand-written backprop)",
                        description="Conv (k x k, 'same' padding) -> ReLU -> 2x2 pool per --channels entry, then "
                                    "dense layers; every derivative written out in NumPy. Writes metrics.json and "
                                    "curves.png; --framework torch trains the same network in PyTorch.")
    _common(p)
    _training(p)
    p.add_argument("--channels", type=positive_int, nargs="+", default=[32, 64],
                   help="output channels of each conv block (default 32 64)")
    p.add_argument("--kernel", type=positive_int, default=3, help="odd conv kernel size (default 3)")
    p.add_argument("--hidden", type=positive_int, nargs="*", default=[128],
                   help="dense layer sizes after the conv blocks (default 128)")
    p.add_argument("--pool", default="max", help="max (default) or avg")
    p.set_defaults(func=cmd_cnn, epochs=8)  # 8 epochs: 91.9% on Fashion-MNIST (docs/scratch.md)

    p = ssub.add_parser("suite", help="the course comparison (b)-(f): table, all curves, grid.png")
    _common(p)
    p.add_argument("--variants", default="bcdef", help="which variants to run (default bcdef)")
    p.add_argument("--out", required=True, help="run folder")
    OVERWRITE.add_to(p)
    p.set_defaults(func=cmd_suite)

    p = ssub.add_parser("linreg", help="linear regression: gradient descent vs closed form, timed as n and d grow")
    p.add_argument("--n", type=positive_int, nargs="+", default=[2000, 8000, 32000],
                   help="sample counts (d = --d-fixed)")
    p.add_argument("--d", type=positive_int, nargs="+", default=[25, 100, 400], help="feature counts (n = --n-fixed)")
    p.add_argument("--n-fixed", type=positive_int, default=8000)
    p.add_argument("--d-fixed", type=positive_int, default=100)
    p.add_argument("--steps", type=positive_int, default=100, help="gradient-descent steps m")
    p.add_argument("--repeats", type=positive_int, default=3, help="timings are the best of this many runs")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--threads", type=bounds.threads, default=1, help="BLAS threads (default 1: steadier timings)")
    p.add_argument("--out", required=True, help="folder for linreg.json and linreg.png")
    OVERWRITE.add_to(p)
    p.set_defaults(func=cmd_linreg)

    p = ssub.add_parser("check", help="gradient check and NumPy/PyTorch step-by-step agreement (float64)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--out", default=None, help="optional folder for checks.json")
    OVERWRITE.add_to(p)
    p.set_defaults(func=cmd_check)
