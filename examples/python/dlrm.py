"""DLRM on Criteo-layout data with server-side tables (docs/python.md#criteo):
`tessera train --model=dlrm` (docs/models.md#dlrm) written in PyTorch.

    build/launch/tessera datagen criteo --rows 1000000 --seed 1 -o data/criteo-synth
    build/launch/tessera launch --servers 2 --workers 2 --program python3 -- \
        examples/python/dlrm.py --data data/criteo-synth

(`examples/python/ctr.py --data DIR` runs this script when DIR holds train.txt[.gz].)
The model, the data handling and the defaults are those of examples/dlrm_criteo.flags
and worker/sparse/dlrm_workload.h: a 13-64-16 bottom MLP on log(1 + max(x, 0)) of the
13 integer features, one 16-wide tessera.torch.Embedding table per categorical field
("dlrm.emb.C1" .. "dlrm.emb.C26", key 0 for an empty field, hash + 1 otherwise, rows
N(0, 0.01^2) on first touch), the pairwise dots of the 27 vectors (351, the lower
triangle row by row) after the bottom output into a 64-32-1 top MLP; Adam lr 0.003 on
the servers for tables and MLPs alike; batches of 256, one epoch. The split rule is
worker/data/criteo.h's: DIR/valid.txt[.gz] is the evaluation set, or, without it, the
last seventh of DIR/train.txt[.gz]. Worker 0 prints "summary: {...}" with the test AUC.
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

DENSE, FIELDS = 13, 26
COLUMNS = 1 + DENSE + FIELDS
DIGITS, HEX = set("-0123456789"), set("0123456789abcdefABCDEF")


class DataError(Exception):
    pass


def split_paths(d):
    """(train, valid or None): worker/data/criteo.h CriteoSplitPaths."""
    def find(name):
        for ext in (".gz", ""):
            p = os.path.join(d, name + ext)
            if os.path.isfile(p):
                return p
        return None

    train = find("train.txt")
    if train is None:
        raise DataError("%s: no Criteo training file (train.txt.gz or train.txt) in the directory "
                        "(`tessera datagen criteo -o %s` writes one)" % (d, d))
    return train, find("valid.txt")


def is_criteo_dir(d):
    return any(os.path.isfile(os.path.join(d, "train.txt" + ext)) for ext in (".gz", ""))


def examples(path):
    """(line number, text) of the non-blank lines of a plain or gzip file."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", newline="\n") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if line.strip(" \t"):
                yield n, line


def count(path, limit=0):
    n = 0
    for _ in examples(path):
        n += 1
        if limit and n >= limit:
            break
    return n


def plan(train, valid, rank, world, train_limit, test_limit):
    """worker/data/criteo.h PlanCriteo: (total_train, [begin, end) of this worker's
    training shard, [begin, end) of the evaluation examples in valid or train)."""
    if valid is not None:
        train_n = count(train, train_limit)
        ev = (0, count(valid, test_limit))
    else:
        total = count(train)
        held = total // 7
        train_n = total - held
        if train_limit:
            train_n = min(train_n, train_limit)
        ev = (total - held, min(total, total - held + test_limit) if test_limit else total)
    if train_n < world:
        raise DataError("%s: %d training examples for %d workers" % (train, train_n, world))
    return train_n, shard(train_n, rank, world), ev


def shard(n, rank, world):  # worker/data/dataset.h ShardRange
    return n * rank // world, n * (rank + 1) // world


def parse(path, lines):
    """Columns of the (line number, text) pairs: labels [N] f32, dense [N, 13] f32
    (log(1 + max(x, 0)), empty = 0), keys [N, 26] i64 (0 = empty, else hash + 1)."""
    rows = []
    for n, line in lines:
        parts = line.split("\t")
        if len(parts) != COLUMNS:
            raise DataError("%s:%d: %d tab-separated fields, expected %d (label, 13 integer, 26 categorical)"
                            % (path, n, len(parts), COLUMNS))
        rows.append(parts)
    if not rows:
        return np.zeros(0, np.float32), np.zeros((0, DENSE), np.float32), np.zeros((0, FIELDS), np.int64)
    cols = list(zip(*rows))

    def bad(c, ok, want):
        """A DataError naming the first line whose field c fails ok(value)."""
        for (n, _), v in zip(lines, cols[c]):
            if not ok(v):
                name = "label" if c == 0 else ("I%d" % c if c <= DENSE else "C%d" % (c - DENSE))
                return DataError("%s:%d: field %s '%s': expected %s" % (path, n, name, v[:40], want))
        return DataError("%s: a bad field %d" % (path, c))

    def check(c, chars, ok, want):
        """Every value of column c made of `chars` only and passing ok(value), checked
        per column so that the common case stays in C loops (int() alone would take
        '+5', ' 5', '1_0' and '0x1f', which the C++ loader refuses)."""
        col = cols[c]
        if not set("".join(col)) <= chars or (c > DENSE and max(map(len, col)) > 8):
            raise bad(c, lambda v: set(v) <= chars and ok(v), want)

    def integer(v):
        try:
            return int(v or "0") is not None
        except ValueError:
            return False

    if not set(cols[0]) <= {"0", "1"}:
        raise bad(0, lambda v: v in ("0", "1"), "0 or 1")
    y = (np.array(cols[0]) == "1").astype(np.float32)
    dense = np.zeros((len(rows), DENSE), np.int64)
    for c in range(1, 1 + DENSE):
        check(c, DIGITS, integer, "an integer or nothing")
        a = np.array(cols[c])
        a[a == ""] = "0"
        try:
            dense[:, c - 1] = a.astype(np.int64)
        except ValueError:  # '5-', '-'
            raise bad(c, integer, "an integer or nothing") from None
    dense = np.log1p(np.maximum(dense, 0).astype(np.float64)).astype(np.float32)  # as the C++ loader
    keys = np.zeros((len(rows), FIELDS), np.int64)
    for c in range(1 + DENSE, COLUMNS):
        col = cols[c]
        check(c, HEX, lambda v: len(v) <= 8, "1 to 8 hex digits or nothing")
        h = np.frombuffer(bytes.fromhex("".join(map(str.zfill, col, itertools.repeat(8)))), dtype=">u4")
        keys[:, c - 1 - DENSE] = np.where(np.array(col) == "", 0, h.astype(np.int64) + 1)
    return y, np.ascontiguousarray(dense), np.ascontiguousarray(keys)


def load_range(path, begin, end, chunk=65536):
    """Examples [begin, end) of the file, parsed a chunk at a time."""
    parts, lines, i = [], [], 0
    for n, line in examples(path):
        if i >= end:
            break
        if i >= begin:
            lines.append((n, line))
            if len(lines) == chunk:
                parts.append(parse(path, lines))
                lines = []
        i += 1
    if i < end:
        raise DataError("%s: %d examples, expected at least %d" % (path, i, end))
    parts.append(parse(path, lines))
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(3))


def mlp(widths, act_last):
    """Linear layers with ReLU, initialised as worker/model/linear.h: weights U(-a, a)
    with a = sqrt(6 / fan_in) before a ReLU, sqrt(6 / (fan_in + fan_out)) before the
    identity; biases zero (the servers draw their own values of that kind)."""
    layers = []
    for i in range(len(widths) - 1):
        fan_in, fan_out = widths[i], widths[i + 1]
        relu = act_last or i + 2 < len(widths)
        lin = torch.nn.Linear(fan_in, fan_out)
        a = math.sqrt(6.0 / fan_in) if relu else math.sqrt(6.0 / (fan_in + fan_out))
        with torch.no_grad():
            lin.weight.uniform_(-a, a)
            lin.bias.zero_()
        layers.append(lin)
        if relu:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


class Dlrm(torch.nn.Module):
    def __init__(self, embed_dim, bottom, top, table_optimizer, seed):
        super().__init__()
        self.bottom = mlp([DENSE] + bottom + [embed_dim], act_last=True)
        self.tables = [tessera.torch.Embedding("dlrm.emb.C%d" % (f + 1), embed_dim, optimizer=table_optimizer,
                                               init=("normal", 0.01), seed=seed) for f in range(FIELDS)]
        vectors = FIELDS + 1
        li, lj = torch.tril_indices(vectors, vectors, offset=-1)  # (1,0), (2,0), (2,1), ... as kernels::PairwiseDot
        self.register_buffer("li", li, persistent=False)
        self.register_buffer("lj", lj, persistent=False)
        self.top = mlp([embed_dim + vectors * (vectors - 1) // 2] + top + [1], act_last=False)

    def forward(self, dense, keys):
        x = self.bottom(dense)
        v = torch.stack([x] + [t(keys[:, f]) for f, t in enumerate(self.tables)], dim=1)  # [B, 27, D]
        z = torch.bmm(v, v.transpose(1, 2))
        pairs = z[:, self.li, self.lj]
        return self.top(torch.cat([x, pairs], dim=1)).squeeze(1)

    def prefetch(self, keys):
        for f, t in enumerate(self.tables):
            t.prefetch(keys[:, f].contiguous())


def auc(scores, labels):
    """Area under the ROC curve, ties at their average rank (worker/sparse/binary_metrics.h)."""
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = (ends - (counts - 1) / 2.0)[inverse]
    pos = labels > 0.5
    npos, nneg = int(pos.sum()), int((~pos).sum())
    return float((ranks[pos].sum() - npos * (npos + 1) / 2.0) / max(1, npos * nneg))


def log_loss(logits, labels):
    z = logits.astype(np.float64)
    return float(np.mean(np.maximum(z, 0) - z * labels + np.log1p(np.exp(-np.abs(z)))))


def main():
    tessera.init()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/criteo-synth", help="DIR with train.txt[.gz] [+ valid.txt[.gz]]")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch_size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=0.003, help="Adam, the tables and the MLPs")
    ap.add_argument("--embed_dim", type=int, default=16)
    ap.add_argument("--bottom_mlp", default="64", help="hidden widths of the bottom MLP")
    ap.add_argument("--hidden", default="64,32", help="hidden widths of the top MLP")
    ap.add_argument("--train_limit", type=int, default=0)
    ap.add_argument("--test_limit", type=int, default=0)
    ap.add_argument("--eval_batch_size", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rank, world = tessera.rank(), tessera.size()
    widths = lambda s: [int(w) for w in s.split(",") if w]  # noqa: E731

    try:
        train_path, valid_path = split_paths(args.data)
        total_train, (begin, end), (ev_begin, ev_end) = plan(train_path, valid_path, rank, world,
                                                             args.train_limit, args.test_limit)
        y, dense, keys = load_range(train_path, begin, end)
    except (DataError, OSError) as e:
        print("dlrm.py: loading --data=%s: %s" % (args.data, e), file=sys.stderr, flush=True)
        sys.exit(2)
    n = len(y)
    min_shard = min(shard(total_train, w, world)[1] - shard(total_train, w, world)[0] for w in range(world))
    steps_per_epoch = max(1, -(-min_shard // args.batch_size))  # worker/train_config.h StepsPerEpoch
    total = args.epochs * steps_per_epoch
    local_batches = -(-n // args.batch_size)

    adam = {"kind": "adam", "lr": args.lr, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
    model = Dlrm(args.embed_dim, widths(args.bottom_mlp), widths(args.hidden), adam, args.seed)
    opt = tessera.torch.DistributedOptimizer(torch.optim.Adam(model.parameters(), lr=args.lr),
                                             model.named_parameters(), seed=args.seed)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    orders = {}

    def batch(s):
        """Step s's examples: the local shard reshuffled every epoch, in slices of
        batch_size (the last one short), a pure function of (seed, worker, step)."""
        epoch, pos = divmod(s, local_batches)
        if epoch not in orders:
            orders.clear()
            orders[epoch] = np.random.default_rng([args.seed, rank, epoch]).permutation(n)
        rows = orders[epoch][pos * args.batch_size:(pos + 1) * args.batch_size]
        return torch.from_numpy(dense[rows]), torch.from_numpy(keys[rows]), torch.from_numpy(y[rows])

    step = tessera.current_step()
    start = time.time()
    cur = batch(step) if step < total else None
    samples = 0
    while step < total:
        x, k, t = cur
        opt.zero_grad()
        loss = loss_fn(model(x, k), t)
        loss.backward()
        if step + 1 < total:
            cur = batch(step + 1)
            model.prefetch(cur[1])  # the next rows travel with this step's pushes
        opt.step(loss=loss, samples=len(t))
        samples += len(t)
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
        try:
            ty, tdense, tkeys = load_range(valid_path or train_path, ev_begin, ev_end)
        except (DataError, OSError) as e:
            print("dlrm.py: loading the evaluation split of --data=%s: %s" % (args.data, e), file=sys.stderr,
                  flush=True)
            sys.exit(2)
        logits = []
        with torch.no_grad():
            for i in range(0, len(ty), args.eval_batch_size):
                j = min(len(ty), i + args.eval_batch_size)
                logits.append(model(torch.from_numpy(tdense[i:j]), torch.from_numpy(tkeys[i:j])).numpy())
        z = np.concatenate(logits) if logits else np.zeros(0, np.float32)
        summary = {"event": "summary", "model": "dlrm", "workers": world, "steps": total,
                   "resumed_from": tessera.resume_step(), "sync": tessera.sync_mode(),
                   "train_s": round(train_s, 3), "samples_per_sec": round(samples * world / max(train_s, 1e-9), 1),
                   "test_examples": int(len(ty)), "test_auc": round(auc(z, ty), 6),
                   "logloss": round(log_loss(z, ty), 6),
                   "params_digest": tessera.params_digest(q for q in model.parameters())}
        print("summary: " + json.dumps(summary), flush=True)
    tessera.finish()


if __name__ == "__main__":
    main()
