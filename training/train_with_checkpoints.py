#!/usr/bin/env python3
"""Example training script for runctl: logistic regression with checkpoints.

Standard library only; runs on any Python >= 3.8. It trains a logistic regression on a seeded
synthetic dataset (mini-batch gradient descent), prints one line per epoch
(``epoch E/N loss=0.123456 acc=0.8123``), and saves ``checkpoint_epoch_E.json`` every
``--checkpoint-interval`` epochs (default 1) into ``--checkpoint-dir`` (default
``$RUNCTL_CHECKPOINT_DIR``, else ``./checkpoints``). Checkpoints are written atomically and carry a
SHA-256 of their content; ``--resume auto`` picks the newest valid one.

On SIGTERM (what ``runctl stop`` sends) it finishes the current step, saves a checkpoint for the
last completed epoch and exits 0. Resuming from epoch E continues at epoch E+1 and gives the same
result as an uninterrupted run (each epoch's shuffle is seeded by the seed and the epoch number).

Examples::

    python train_with_checkpoints.py --epochs 10
    python train_with_checkpoints.py --epochs 20 --resume auto
    python train_with_checkpoints.py --resume checkpoints/checkpoint_epoch_5.json
"""

# ruff: noqa: B905  (zip(strict=) needs Python 3.10; this script runs on 3.8+)
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import re
import signal
import sys
import time

FORMAT = "runctl-example-checkpoint/1"
CHECKPOINT_RE = re.compile(r"^checkpoint_epoch_(\d+)\.json$")
N_SAMPLES = 2000
N_FEATURES = 10
BATCH_SIZE = 100

EXIT_FAILED = 3
EXIT_USAGE = 2


class CheckpointError(Exception):
    """A checkpoint file that cannot be used."""


# --- data and model -----------------------------------------------------------------------------


def make_dataset(seed, n=N_SAMPLES, d=N_FEATURES):
    """A seeded, linearly separable-ish binary classification problem."""
    rng = random.Random(seed)
    true_w = [rng.gauss(0.0, 1.0) for _ in range(d)]
    true_b = rng.gauss(0.0, 0.5)
    xs, ys = [], []
    for _ in range(n):
        x = [rng.gauss(0.0, 1.0) for _ in range(d)]
        z = sum(wi * xi for wi, xi in zip(true_w, x)) + true_b + rng.gauss(0.0, 0.5)
        xs.append(x)
        ys.append(1.0 if z > 0 else 0.0)
    return xs, ys


def sigmoid(z):
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def evaluate(weights, bias, xs, ys):
    """(mean log loss, accuracy) over the whole dataset."""
    eps = 1e-12
    loss = 0.0
    correct = 0
    for x, y in zip(xs, ys):
        p = sigmoid(sum(wi * xi for wi, xi in zip(weights, x)) + bias)
        loss -= y * math.log(p + eps) + (1.0 - y) * math.log(1.0 - p + eps)
        if (p >= 0.5) == (y == 1.0):
            correct += 1
    return loss / len(xs), correct / len(xs)


def batches_for_epoch(seed, epoch, n):
    """The mini-batches of one epoch; depends only on (seed, epoch), so resuming is exact."""
    order = list(range(n))
    random.Random(seed * 1000003 + epoch).shuffle(order)
    return [order[i : i + BATCH_SIZE] for i in range(0, n, BATCH_SIZE)]


def gradient_step(weights, bias, xs, ys, batch, lr):
    """One gradient-descent step on the mean log loss of ``batch``; returns new (weights, bias)."""
    d = len(weights)
    grad_w = [0.0] * d
    grad_b = 0.0
    for i in batch:
        x = xs[i]
        err = sigmoid(sum(wi * xi for wi, xi in zip(weights, x)) + bias) - ys[i]
        for j in range(d):
            grad_w[j] += err * x[j]
        grad_b += err
    m = float(len(batch))
    return [w - lr * g / m for w, g in zip(weights, grad_w)], bias - lr * grad_b / m


# --- checkpoints --------------------------------------------------------------------------------


def checkpoint_name(epoch):
    return f"checkpoint_epoch_{epoch}.json"


def canonical_payload(data):
    """The bytes the sha256 covers: every field but ``sha256``, sorted keys, compact."""
    body = {k: v for k, v in data.items() if k != "sha256"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


def save_checkpoint(directory, epoch, weights, bias, loss, acc, seed):
    """Write checkpoint_epoch_E.json atomically (temp file in the same dir, fsync, os.replace)."""
    os.makedirs(directory, exist_ok=True)
    data = {
        "format": FORMAT,
        "epoch": epoch,
        "weights": list(weights),
        "bias": bias,
        "loss": loss,
        "acc": acc,
        "seed": seed,
    }
    data["sha256"] = hashlib.sha256(canonical_payload(data)).hexdigest()
    final = os.path.join(directory, checkpoint_name(epoch))
    tmp = os.path.join(directory, f".{checkpoint_name(epoch)}.tmp.{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    try:  # make the rename itself durable (best effort: not every filesystem allows it)
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return final
    try:
        os.fsync(dir_fd)
    except OSError:
        pass  # directory fsync unsupported here; the file content itself is already synced
    finally:
        os.close(dir_fd)
    return final


def load_checkpoint(path):
    """Read and validate a checkpoint; raises CheckpointError with the reason."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise CheckpointError(f"cannot read: {exc.strerror}") from exc
    except ValueError as exc:
        raise CheckpointError(f"not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise CheckpointError("not a JSON object")
    if data.get("format") != FORMAT:
        raise CheckpointError(f"unknown format {data.get('format')!r} (expected {FORMAT!r})")
    expected = hashlib.sha256(canonical_payload(data)).hexdigest()
    if data.get("sha256") != expected:
        raise CheckpointError("sha256 mismatch (file corrupted or edited)")
    epoch = data.get("epoch")
    weights = data.get("weights")
    if not isinstance(epoch, int) or epoch < 0:
        raise CheckpointError(f"bad epoch {epoch!r}")
    if not isinstance(weights, list) or len(weights) != N_FEATURES:
        raise CheckpointError(f"weights must be a list of {N_FEATURES} numbers")
    if not all(isinstance(w, (int, float)) for w in weights + [data.get("bias")]):
        raise CheckpointError("weights and bias must be numbers")
    return data


def find_checkpoints(directory):
    """[(epoch, path)] of checkpoint files in ``directory``, newest epoch first."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    found = []
    for name in names:
        m = CHECKPOINT_RE.match(name)
        if m:
            found.append((int(m.group(1)), os.path.join(directory, name)))
    found.sort(reverse=True)
    return found


def newest_valid_checkpoint(directory, warn):
    """The newest checkpoint that validates (invalid ones are skipped with a warning), or None."""
    for _epoch, path in find_checkpoints(directory):
        try:
            return path, load_checkpoint(path)
        except CheckpointError as exc:
            warn(f"Warning: skipping invalid checkpoint {os.path.basename(path)}: {exc}")
    return None


# --- command line -------------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Logistic regression with checkpoints (runctl example).",
    )
    parser.add_argument("--epochs", type=int, default=10, help="number of epochs (default 10)")
    parser.add_argument(
        "--checkpoint-interval",
        type=int,
        default=1,
        help="save a checkpoint every N epochs (default: 1, saves every epoch)",
    )
    parser.add_argument(
        "--checkpoint-dir",
        default=None,
        help="where checkpoints go (default: $RUNCTL_CHECKPOINT_DIR, else ./checkpoints)",
    )
    parser.add_argument(
        "--resume",
        default=None,
        metavar="PATH|auto",
        help="resume from a checkpoint file, or 'auto' for the newest valid one in the checkpoint "
        "dir (default: $RUNCTL_RESUME_FROM if set)",
    )
    parser.add_argument("--lr", type=float, default=0.5, help="learning rate (default 0.5)")
    parser.add_argument("--seed", type=int, default=42, help="seed of data and shuffling (default 42)")
    parser.add_argument(
        "--sleep",
        type=float,
        default=0.2,
        help="seconds to pause per epoch so a run is watchable and stoppable (default 0.2)",
    )
    parser.add_argument(
        "--fail-at-epoch",
        type=int,
        default=None,
        metavar="N",
        help="exit with code 3 when epoch N starts (to try out failed runs)",
    )
    parser.add_argument("extra", nargs="*", help="ignored (printed on the args: line)")
    return parser.parse_args(argv)


def main(argv=None):
    # first thing: from now on SIGTERM (runctl stop) means "checkpoint and exit 0"
    stop = {"signal": False}

    def on_sigterm(_signum, _frame):
        stop["signal"] = True

    signal.signal(signal.SIGTERM, on_sigterm)

    argv = sys.argv[1:] if argv is None else list(argv)
    print("args: " + json.dumps(argv), flush=True)
    args = parse_args(argv)

    def warn(msg):
        print(msg, file=sys.stderr, flush=True)

    if args.epochs < 1:
        warn("error: --epochs must be at least 1")
        return EXIT_USAGE
    if args.checkpoint_interval < 1:
        warn("error: --checkpoint-interval must be at least 1")
        return EXIT_USAGE
    if args.checkpoint_interval > 5:
        warn(
            f"Warning: checkpoint interval {args.checkpoint_interval} > 5 epochs: "
            f"up to {args.checkpoint_interval} epochs of work can be lost"
        )
    ck_dir = args.checkpoint_dir or os.environ.get("RUNCTL_CHECKPOINT_DIR") or "checkpoints"
    resume = args.resume if args.resume is not None else (os.environ.get("RUNCTL_RESUME_FROM") or None)

    xs, ys = make_dataset(args.seed)
    rng = random.Random(args.seed)
    weights = [rng.gauss(0.0, 0.01) for _ in range(N_FEATURES)]
    bias = 0.0
    start_epoch = 1

    if resume:
        if resume == "auto":
            found = newest_valid_checkpoint(ck_dir, warn)
            if found is None:
                print(f"no valid checkpoint in {ck_dir}: starting from epoch 1", flush=True)
                loaded = None
            else:
                path, loaded = found
        else:
            path = resume
            if not os.path.isabs(path) and not os.path.exists(path):
                candidate = os.path.join(ck_dir, path)
                if os.path.exists(candidate):
                    path = candidate
            try:
                loaded = load_checkpoint(path)
            except CheckpointError as exc:
                warn(f"error: cannot resume from {resume}: {exc}")
                return EXIT_USAGE
        if loaded is not None:
            weights = [float(w) for w in loaded["weights"]]
            bias = float(loaded["bias"])
            start_epoch = loaded["epoch"] + 1
            print(
                f"resuming from {os.path.basename(path)} (epoch {loaded['epoch']})",
                flush=True,
            )

    # the last completed epoch (what a SIGTERM saves): the resumed one, or none yet
    done = {"epoch": start_epoch - 1, "weights": list(weights), "bias": bias, "loss": None, "acc": None}
    loss = acc = None

    def save_done():
        if done["loss"] is None:
            done["loss"], done["acc"] = evaluate(done["weights"], done["bias"], xs, ys)
        return save_checkpoint(
            ck_dir, done["epoch"], done["weights"], done["bias"], done["loss"], done["acc"], args.seed
        )

    def on_stop():
        if done["epoch"] < 1:
            print("received SIGTERM: no completed epoch to save", flush=True)
        else:
            path = save_done()
            print(f"received SIGTERM: saved {os.path.basename(path)}", flush=True)
        return 0

    for epoch in range(start_epoch, args.epochs + 1):
        if stop["signal"]:
            return on_stop()
        if args.fail_at_epoch is not None and epoch == args.fail_at_epoch:
            warn(f"simulated failure at epoch {epoch} (--fail-at-epoch)")
            return EXIT_FAILED
        interrupted = False
        for batch in batches_for_epoch(args.seed, epoch, len(xs)):
            weights, bias = gradient_step(weights, bias, xs, ys, batch, args.lr)
            if stop["signal"]:  # finish the current step, then stop: this epoch is incomplete
                interrupted = True
                break
        if interrupted:
            return on_stop()
        loss, acc = evaluate(weights, bias, xs, ys)
        done.update(epoch=epoch, weights=list(weights), bias=bias, loss=loss, acc=acc)
        print(f"epoch {epoch}/{args.epochs} loss={loss:.6f} acc={acc:.4f}", flush=True)
        if epoch % args.checkpoint_interval == 0 or epoch == args.epochs:
            save_done()
        remaining = args.sleep
        while remaining > 0 and not stop["signal"]:
            step = min(0.05, remaining)
            time.sleep(step)
            remaining -= step
    if stop["signal"]:
        return on_stop()

    if loss is None:  # resumed at or past the last epoch: nothing left to train
        loss, acc = evaluate(weights, bias, xs, ys)
        print(f"nothing to train: checkpoint is at epoch {start_epoch - 1} of {args.epochs}")
    print(f"training complete: {args.epochs} epochs, final loss={loss:.6f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
