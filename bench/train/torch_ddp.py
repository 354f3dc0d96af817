#!/usr/bin/env python3
"""The PyTorch peer of Tessera's training benchmark (bench/train/run.sh).

Trains the same MNIST MLP (784-256-128-10, ReLU, softmax cross-entropy) with
DistributedDataParallel over gloo on W local processes: each process holds the same
contiguous shard of the training set that a Tessera worker holds (docs/models.md), draws
batches of --batch_size from a per-epoch shuffle, and runs the same optimizer (DDP
averages gradients, like Tessera's --grad_reduce=mean). Prints one JSON line:
  {"framework":"torch","workers":W,"steps":N,"samples_per_sec":...,"train_s":...}
samples_per_sec = steps * batch_size * W / train_s, where train_s runs from a barrier
before step 0 to a barrier after the last step (data loading and process start-up are
not counted, as in Tessera's summary).

Usage: torch_ddp.py --workers 2 --steps 300 [--batch_size 64] [--optimizer sgd|adam]
                    [--lr 0.01] [--threads 1] [--data data/mnist]
"""
import argparse
import gzip
import json
import os
import socket
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path, offset):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def load_shard(data_dir, rank, world):
    x = read_idx(os.path.join(data_dir, "train-images-idx3-ubyte.gz"), 16).reshape(-1, 784)
    y = read_idx(os.path.join(data_dir, "train-labels-idx1-ubyte.gz"), 8)
    n = x.shape[0]
    begin, end = rank * n // world, (rank + 1) * n // world  # Tessera's ShardRange
    xs = torch.from_numpy(x[begin:end].astype(np.float32) / 255.0)
    ys = torch.from_numpy(y[begin:end].astype(np.int64))
    return xs, ys


def build_model(hidden):
    layers, fan_in = [], 784
    for h in hidden:
        layers += [nn.Linear(fan_in, h), nn.ReLU()]
        fan_in = h
    layers.append(nn.Linear(fan_in, 10))
    return nn.Sequential(*layers)


def worker(rank, args, port, out_q):
    torch.set_num_threads(args.threads)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=args.workers)
    torch.manual_seed(args.seed)
    xs, ys = load_shard(args.data, rank, args.workers)
    model = nn.parallel.DistributedDataParallel(build_model(args.hidden))
    if args.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed * 1000 + rank)
    n = xs.shape[0]
    perm, pos = torch.randperm(n, generator=gen), 0
    compute_s = 0.0
    dist.barrier()
    start = time.perf_counter()
    for _ in range(args.steps):
        if pos >= n:
            perm, pos = torch.randperm(n, generator=gen), 0
        idx = perm[pos:pos + args.batch_size]
        pos += args.batch_size
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xs[idx]), ys[idx])
        loss.backward()  # DDP all-reduces the gradients during backward
        opt.step()
        compute_s += time.perf_counter() - t0
    dist.barrier()
    train_s = time.perf_counter() - start
    if rank == 0:
        out_q.put({
            "framework": "torch", "workers": args.workers, "steps": args.steps,
            "batch_size": args.batch_size, "optimizer": args.optimizer,
            "samples_per_sec": round(args.steps * args.batch_size * args.workers / train_s, 1),
            "train_s": round(train_s, 3), "step_s_incl_allreduce": round(compute_s, 3),
            "final_loss": float(loss.item()), "threads": args.threads,
            "torch": torch.__version__,
        })
    dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--hidden", type=lambda s: [int(v) for v in s.split(",") if v], default=[256, 128])
    p.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads per process")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data", default="data/mnist")
    args = p.parse_args()
    ctx = mp.get_context("spawn")
    q = ctx.SimpleQueue()
    mp.start_processes(worker, args=(args, free_port(), q), nprocs=args.workers, join=True,
                       start_method="spawn")
    print(json.dumps(q.get()))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
