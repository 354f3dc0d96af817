"""A click model on a9a with server-side sparse tables (docs/python.md):
tessera.torch.Embedding tables keyed by u64 feature ids, an MLP on top.

    build/launch/tessera launch --servers 2 --workers 2 --program python3 -- \
        examples/python/ctr.py --epochs 3

Like `tessera train --model=widedeep` (docs/models.md): a wide part (a 1-wide table over
every active feature and every hashed pair of them, summed into the logit) and a deep
part (an 8-wide embedding per active feature, summed, into a 64-32-1 MLP). The tables
live on the servers, created row by row as ids first appear; only a batch's unique rows
travel. Worker 0 prints "summary: {...}" with the test AUC and log-loss.

On Criteo-layout data (a --data directory holding train.txt[.gz], as `tessera datagen
criteo` writes it) this script runs examples/python/dlrm.py instead, the model of
`tessera train --model=dlrm`, with dlrm.py's flags and defaults (those of
examples/dlrm_criteo.flags):

    build/launch/tessera launch --servers 2 --workers 2 --program python3 -- \
        examples/python/ctr.py --data data/criteo-synth
"""

import argparse
import gzip
import itertools
import json
import math
import os
import sys
import time

import numpy as np
import torch

import tessera
import tessera.torch

MASK = (1 << 62) - 1


def cross_key(a, b):
    # Pairs get ids far from the single features' (1..123), deterministic across runs.
    return ((a * 1000003 + b) * 0x9E3779B97F4A7C15 & MASK) | (1 << 62)


def load(path, limit):
    """Rows as CSR arrays: wide ids (features and pairs), deep ids (features), labels."""
    wide, wide_off, deep, deep_off, labels = [], [0], [], [0], []
    with gzip.open(path, "rt") as f:
        for n, line in enumerate(f):
            if limit and n >= limit:
                break
            parts = line.split()
            labels.append(1.0 if parts[0] == "+1" else 0.0)
            feats = sorted(int(p.split(":")[0]) for p in parts[1:])
            deep.extend(feats)
            deep_off.append(len(deep))
            wide.extend(feats)
            wide.extend(cross_key(a, b) for a, b in itertools.combinations(feats, 2))
            wide_off.append(len(wide))
    return (np.array(wide, dtype=np.int64), np.array(wide_off, dtype=np.int64), np.array(deep, dtype=np.int64),
            np.array(deep_off, dtype=np.int64), np.array(labels, dtype=np.float32))


def batch(data, rows):
    """The ids of `rows` and, for each id, the row (0..len(rows)-1) it belongs to."""
    wide, wide_off, deep, deep_off, labels = data
    out = []
    for ids, off in ((wide, wide_off), (deep, deep_off)):
        starts, ends = off[rows], off[rows + 1]
        lens = ends - starts
        idx = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends)]) if len(rows) else np.zeros(0, np.int64)
        out.append((torch.from_numpy(ids[idx]), torch.from_numpy(np.repeat(np.arange(len(rows)), lens))))
    return out[0], out[1], torch.from_numpy(labels[rows])


class WideDeep(torch.nn.Module):
    def __init__(self, embed_dim, hidden, lr):
        super().__init__()
        opt = {"kind": "adagrad", "lr": lr, "initial_accumulator": 0.1}
        self.wide = tessera.torch.Embedding("wide.weight", 1, optimizer=opt, init=("zeros", 0.0))
        self.deep = tessera.torch.Embedding("deep.embedding", embed_dim, optimizer=opt, init=("normal", 0.01), seed=7)
        layers, width = [], embed_dim
        for h in hidden:
            layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
            width = h
        layers.append(torch.nn.Linear(width, 1))
        self.mlp = torch.nn.Sequential(*layers)

    def forward(self, wide, deep, n):
        (wide_ids, wide_row), (deep_ids, deep_row) = wide, deep
        w = torch.zeros(n, 1).index_add(0, wide_row, self.wide(wide_ids))
        d = torch.zeros(n, self.deep.dim).index_add(0, deep_row, self.deep(deep_ids))
        return (w + self.mlp(d)).squeeze(1)


def auc(scores, labels):
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    s = scores[order]
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1
        i = j + 1
    pos = labels > 0.5
    npos, nneg = int(pos.sum()), int((~pos).sum())
    return (ranks[pos].sum() - npos * (npos + 1) / 2.0) / max(1, npos * nneg)


def main():
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--data", default="data/a9a")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import dlrm  # examples/python/dlrm.py
    if dlrm.is_criteo_dir(peek.parse_known_args()[0].data):
        dlrm.main()  # the Criteo layout: the DLRM, with dlrm.py's flags
        return
    tessera.init()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/a9a")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch_size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.05, help="Adagrad, the tables and the MLP")
    ap.add_argument("--embed_dim", type=int, default=8)
    ap.add_argument("--train_limit", type=int, default=0)
    ap.add_argument("--test_limit", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rank, world = tessera.rank(), tessera.size()

    train = load(args.data + "/a9a.gz", args.train_limit)
    n = len(train[4])
    per = n // world
    mine = np.arange(rank * per, (rank + 1) * per)
    steps_per_epoch = per // args.batch_size
    total = args.epochs * steps_per_epoch

    model = WideDeep(args.embed_dim, [64, 32], args.lr)
    opt = tessera.torch.DistributedOptimizer(
        torch.optim.Adagrad(model.parameters(), lr=args.lr, initial_accumulator_value=0.1),
        model.named_parameters(), seed=args.seed)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    start = time.time()
    step = tessera.current_step()
    orders = {}

    def rows_of(s):  # the batch of step s: a pure function of (seed, worker, epoch, position)
        epoch, pos = divmod(s, steps_per_epoch)
        if epoch not in orders:
            orders.clear()
            orders[epoch] = np.random.default_rng(args.seed * 7919 + rank * 104729 + epoch).permutation(mine)
        return orders[epoch][pos * args.batch_size:(pos + 1) * args.batch_size]

    rows = rows_of(step) if step < total else None
    cur = batch(train, rows) if rows is not None else None
    while step < total:
        wide, deep, y = cur
        opt.zero_grad()
        loss = loss_fn(model(wide, deep, len(rows)), y)
        loss.backward()
        if step + 1 < total:
            # The next batch's rows ride with this step's pushes (bsp answers them once
            # this step is applied): the C++ sparse loop's overlap.
            next_rows = rows_of(step + 1)
            nxt = batch(train, next_rows)
            model.wide.prefetch(nxt[0][0])
            model.deep.prefetch(nxt[1][0])
        opt.step(loss=loss, samples=len(rows))
        if step + 1 < total:
            rows, cur = next_rows, nxt
        step += 1
        if rank == 0 and step % 200 == 0:
            print("step %d/%d loss %.4f" % (step, total, float(loss)), file=sys.stderr, flush=True)
        if tessera.checkpoint_due():
            tessera.save_worker_state(json.dumps({"step": step}).encode())
    train_s = time.time() - start
    opt.synchronize()
    if tessera.checkpoint_due():  # the job's final step (tessera.synchronize())
        tessera.save_worker_state(json.dumps({"step": step}).encode())
    if rank == 0:
        test = load(args.data + "/a9a.t.gz", args.test_limit)
        scores, labels = [], test[4]
        with torch.no_grad():
            for i in range(0, len(labels), 1000):
                rows = np.arange(i, min(i + 1000, len(labels)))
                wide, deep, _ = batch(test, rows)
                scores.append(torch.sigmoid(model(wide, deep, len(rows))).numpy())
        p = np.clip(np.concatenate(scores), 1e-7, 1 - 1e-7)
        logloss = float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))
        summary = {"event": "summary", "model": "ctr", "workers": world, "steps": total,
                   "resumed_from": tessera.resume_step(),
                   "sync": tessera.sync_mode(), "train_s": round(train_s, 3), "test_auc": round(auc(p, labels), 6),
                   "logloss": round(logloss, 4),
                   "params_digest": tessera.params_digest(q for q in model.parameters())}
        print("summary: " + json.dumps(summary), flush=True)
    tessera.finish()


if __name__ == "__main__":
    main()
