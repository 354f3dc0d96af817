"""MNIST with PyTorch on Tessera's parameter servers (docs/python.md).

    build/launch/tessera launch --servers 2 --workers 2 --program python3 -- \
        examples/python/mnist.py --epochs 2

Every rank runs this script; tessera.init() turns rank 0 into the coordinator and ranks
1..S into servers, the rest train. Tessera's job flags (--sync, --checkpoint_dir,
--checkpoint_every_steps, ...) may be given among the script's own: init() takes them
out of sys.argv. Worker 0 prints one line "summary: {...}" with the test accuracy and
the params_digest of the final parameters.
"""

import argparse
import gzip
import json
import os
import struct
import sys
import time

import numpy as np
import torch

import tessera
import tessera.torch


def load_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_split(data_dir, prefix, limit):
    x = load_idx(os.path.join(data_dir, prefix + "-images-idx3-ubyte.gz"))
    y = load_idx(os.path.join(data_dir, prefix + "-labels-idx1-ubyte.gz"))
    if limit > 0:
        x, y = x[:limit], y[:limit]
    x = torch.from_numpy(x.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    x = (x - 0.1307) / 0.3081
    return x, torch.from_numpy(y.astype(np.int64))


def build_model(kind, hidden):
    if kind == "mlp":
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, hidden), torch.nn.ReLU(),
                                   torch.nn.Linear(hidden, hidden // 2), torch.nn.ReLU(),
                                   torch.nn.Linear(hidden // 2, 10))
    if kind == "cnn":
        return torch.nn.Sequential(torch.nn.Conv2d(1, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                   torch.nn.Conv2d(16, 32, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                   torch.nn.Flatten(), torch.nn.Linear(512, hidden), torch.nn.ReLU(),
                                   torch.nn.Linear(hidden, 10))
    raise SystemExit("--model must be mlp or cnn")


def evaluate(model, x, y):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), 1000):
            correct += int((model(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum())
    model.train()
    return correct / len(x)


def main():
    tessera.init()  # before argparse: takes Tessera's job flags out of sys.argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/mnist")
    ap.add_argument("--model", default="cnn", choices=["mlp", "cnn"])
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--optimizer", default="adam", choices=["sgd", "momentum", "adam", "adamw", "adagrad"])
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch_size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--steps", type=int, default=0, help="> 0: stop after this many steps")
    ap.add_argument("--train_limit", type=int, default=0)
    ap.add_argument("--test_limit", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads per worker")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    rank, world = tessera.rank(), tessera.size()
    x, y = load_split(args.data, "train", args.train_limit)
    # Contiguous shards, as `tessera train` partitions (every worker runs the same steps).
    per = len(x) // world
    x, y = x[rank * per:(rank + 1) * per], y[rank * per:(rank + 1) * per]
    steps_per_epoch = per // args.batch_size
    total = args.epochs * steps_per_epoch
    if args.steps > 0:
        total = min(total, args.steps) if args.epochs > 0 else args.steps

    model = build_model(args.model, args.hidden)
    params = model.parameters()
    opt = {"sgd": lambda: torch.optim.SGD(params, lr=args.lr),
           "momentum": lambda: torch.optim.SGD(params, lr=args.lr, momentum=0.9),
           "adam": lambda: torch.optim.Adam(params, lr=args.lr),
           "adamw": lambda: torch.optim.AdamW(params, lr=args.lr),
           "adagrad": lambda: torch.optim.Adagrad(params, lr=args.lr)}[args.optimizer]()
    opt = tessera.torch.DistributedOptimizer(opt, model.named_parameters(), seed=args.seed)

    # The data cursor: resumed from this worker's saved state, else the start.
    step = tessera.current_step()
    saved = tessera.load_worker_state()
    if saved is not None:
        cursor = json.loads(saved)
        if cursor["step"] != step:
            raise SystemExit("worker state of step %d in a checkpoint of step %d" % (cursor["step"], step))
    loss_fn = torch.nn.CrossEntropyLoss()
    start = time.time()
    order = None
    epoch_of_order = -1
    while step < total:
        epoch, pos = divmod(step, steps_per_epoch)
        if epoch != epoch_of_order:  # the epoch's order depends only on (seed, worker, epoch)
            g = torch.Generator().manual_seed(args.seed * 7919 + rank * 104729 + epoch)
            order = torch.randperm(per, generator=g)
            epoch_of_order = epoch
        idx = order[pos * args.batch_size:(pos + 1) * args.batch_size]
        opt.zero_grad()
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        opt.step(loss=loss, samples=len(idx))
        step += 1
        if rank == 0 and (step % 100 == 0 or step == total):
            print("step %d/%d loss %.4f" % (step, total, float(loss)), file=sys.stderr, flush=True)
        if tessera.checkpoint_due():
            tessera.save_worker_state(json.dumps({"step": step}).encode())
        if tessera.preempted():
            break
    train_s = time.time() - start
    timing = opt.timing()
    opt.synchronize()
    if tessera.checkpoint_due():  # the job's final step (tessera.synchronize())
        tessera.save_worker_state(json.dumps({"step": step}).encode())
    if rank == 0:
        tx, ty = load_split(args.data, "t10k", args.test_limit)
        summary = {"event": "summary", "model": args.model, "workers": world, "steps": total,
                   "resumed_from": tessera.resume_step(), "worker_state_loaded": saved is not None,
                   "sync": tessera.sync_mode(), "train_s": round(train_s, 3),
                   "samples_per_sec": round((total - max(0, tessera.resume_step())) * args.batch_size * world /
                                            max(train_s, 1e-9), 1),
                   "test_accuracy": evaluate(model, tx, ty),
                   # The Python layer's own time per step (hooks, step() without its waits)
                   # and step()'s waits (docs/benchmarks-python.md).
                   "layer_ms_per_step": round(1000 * timing["layer_s"] / max(1, timing["steps"]), 3),
                   "wait_ms_per_step": round(1000 * timing["wait_s"] / max(1, timing["steps"]), 3),
                   "params_digest": tessera.params_digest(p for p in model.parameters())}
        print("summary: " + json.dumps(summary), flush=True)
    tessera.finish()


if __name__ == "__main__":
    main()
