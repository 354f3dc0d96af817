"""PyTorch on Tessera's servers (docs/python.md): DistributedOptimizer for dense
parameters, Embedding for server-side sparse tables.

The servers hold the parameters and apply the optimizer (the same fused kernels as for
`tessera train`); a worker pushes gradients as backward produces them and pulls the new
values into the model's tensors at step(). Tensors cross into C++ as (address, shape,
strides, dtype, device): the extension does not link libtorch.
"""

import math
import time

import torch

import tessera
from tessera import TesseraError

__all__ = ["DistributedOptimizer", "Embedding", "server_optimizer"]

_SUPPORTED = "SGD (with momentum and Nesterov), Adam, AdamW and Adagrad"


def _refuse(opt_name, what):
    raise ValueError("tessera.torch: %s with %s has no server-side equivalent (the servers run %s)"
                     % (opt_name, what, _SUPPORTED))


def server_optimizer(optimizer, group):
    """The servers' optimizer settings for one parameter group of a torch optimizer.

    Raises TypeError for an optimizer class the servers do not run, ValueError for a
    setting they do not have (dampening, amsgrad, maximize, lr_decay)."""
    o = {"kind": "sgd", "lr": float(group["lr"]), "momentum": 0.0, "nesterov": False, "beta1": 0.9,
         "beta2": 0.999, "eps": 1e-8, "weight_decay": float(group.get("weight_decay", 0.0)),
         "initial_accumulator": 0.0}
    name = type(optimizer).__name__
    if group.get("maximize", False):
        _refuse(name, "maximize=True")
    if type(optimizer) is torch.optim.SGD:
        if group.get("dampening", 0) != 0:
            _refuse(name, "dampening=%g" % group["dampening"])
        if group.get("momentum", 0) != 0:
            o.update(kind="momentum", momentum=float(group["momentum"]), nesterov=bool(group.get("nesterov", False)))
    elif type(optimizer) in (torch.optim.Adam, torch.optim.AdamW):
        if group.get("amsgrad", False):
            _refuse(name, "amsgrad=True")
        b1, b2 = group["betas"]
        o.update(kind="adam" if type(optimizer) is torch.optim.Adam else "adamw", beta1=float(b1), beta2=float(b2),
                 eps=float(group["eps"]))
    elif type(optimizer) is torch.optim.Adagrad:
        if group.get("lr_decay", 0) != 0:
            _refuse(name, "lr_decay=%g" % group["lr_decay"])
        o.update(kind="adagrad", eps=float(group["eps"]),
                 initial_accumulator=float(group.get("initial_accumulator_value", 0.0)))
    else:
        raise TypeError("tessera.torch: the servers cannot run %s.%s; supported: %s"
                        % (type(optimizer).__module__, name, _SUPPORTED))
    return o


def _initialiser(t):
    """How the servers initialise a parameter torch initialised as `t`: the servers
    create and own the values (every worker, every run, the same), so the values torch
    drew are replaced at the first pull by the servers' draw of the same kind: zeros, a
    constant, or U(-a, a) with a the largest |value| of t (torch's default Linear and
    Conv initialisers are uniform)."""
    t = t.detach()
    if t.numel() == 0 or not bool(torch.any(t != 0)):
        return "zeros", 0.0
    first = t.reshape(-1)[0]
    if bool(torch.all(t == first)):
        return "constant", float(first)
    return "uniform", float(t.abs().max())


def _check_cpu_f32(t, what):
    if t.dtype != torch.float32:
        raise TypeError("%s has dtype %s: Tessera takes torch.float32" % (what, t.dtype))
    if t.device.type != "cpu":
        raise ValueError("%s is on device %s: Tessera takes CPU tensors" % (what, t.device))
    if not t.is_contiguous():
        raise ValueError("%s is not contiguous: Tessera takes contiguous tensors" % what)


class _Pending:
    """Requests in flight with the tensors they read or write (kept alive until done)."""

    def __init__(self):
        self.items = []

    def add(self, handle, *tensors):
        self.items.append((handle, tensors))

    def wait(self, timeout_s):
        first = None
        for handle, _ in self.items:
            try:
                handle.wait(timeout_s)
            except TesseraError as e:  # wait for all: no reply may land in freed memory
                first = first or e
        self.items = []
        if first is not None:
            tessera._raise_stopped(first)


class Embedding(torch.nn.Module):
    """A table of `dim`-wide float32 rows on the servers, keyed by u64 ids (int64 tensors,
    any values): only the rows a batch touches ever reach the worker, so the table may be
    far larger than the worker's memory.

    forward(ids) dedups the batch's ids, pulls the unique rows and returns
    rows[inverse] of shape ids.shape + (dim,); backward pushes the summed gradient of each
    unique row. The servers apply `optimizer`, a dict of their settings: kind (sgd,
    momentum, adagrad, adam, adamw), lr, momentum, nesterov, beta1, beta2, eps,
    weight_decay, initial_accumulator; e.g. {"kind": "adagrad", "lr": 0.05}. init:
    ("normal", std), ("uniform", a), ("constant", c) or ("zeros", 0): the servers create
    a row the first time it is touched.

    prefetch(next_ids), called after backward and before opt.step(), pulls the next
    batch's rows now, tagged with the next step: under bsp the servers answer once this
    step is applied, so the pull travels with this step's pushes and the next forward
    finds its rows there (the C++ sparse loop's overlap, docs/training.md).

    Declare every Embedding before the DistributedOptimizer: it declares the tables with
    the dense parameters (every worker the same list). One forward per table and step.
    """

    _tables = []  # created and not yet declared, in creation order

    def __init__(self, name, dim, optimizer=None, init=("normal", 0.01), seed=0):
        super().__init__()
        if dim < 1:
            raise ValueError("Embedding %r: dim must be >= 1, got %d" % (name, dim))
        kind, scale = init
        if kind not in ("normal", "uniform", "zeros", "constant"):
            raise ValueError("Embedding %r: init must be normal, uniform, zeros or constant, got %r" % (name, kind))
        opt = {"kind": "sgd", "lr": 0.01, "momentum": 0.0, "nesterov": False, "beta1": 0.9, "beta2": 0.999,
               "eps": 1e-8, "weight_decay": 0.0, "initial_accumulator": 0.1}
        if optimizer is not None:
            unknown = set(optimizer) - set(opt)
            if unknown:
                raise ValueError("Embedding %r: unknown optimizer settings %s" % (name, sorted(unknown)))
            if optimizer.get("kind", "sgd") not in ("sgd", "momentum", "adagrad", "adam", "adamw"):
                raise ValueError("Embedding %r: optimizer kind %r is not one the servers run (%s)"
                                 % (name, optimizer["kind"], _SUPPORTED))
            opt.update(optimizer)
        self.table_name = name
        self.dim = int(dim)
        self.spec = {"name": name, "kind": "sparse", "shape": [self.dim], "init": kind, "scale": float(scale),
                     "seed": int(seed), "optimizer": opt}
        self.table_id = None
        self._pushed_step = -1
        self._pending = _Pending()
        self._prefetched = None  # (step, ids, unique, inverse, rows, pending pull)
        Embedding._tables.append(self)

    def forward(self, ids):
        if self.table_id is None:
            raise TesseraError("Embedding %r is not declared yet: create the DistributedOptimizer first"
                               % self.table_name)
        if ids.dtype != torch.int64:
            raise TypeError("Embedding %r: ids have dtype %s, expected torch.int64" % (self.table_name, ids.dtype))
        tessera._leave_boundary()
        f, self._prefetched = self._prefetched, None
        if f is not None and f[0] == tessera.current_step() and f[1].shape == ids.shape and torch.equal(f[1], ids):
            _, _, unique, inverse, rows, p = f
        else:
            if f is not None:
                f[5].wait(tessera.request_timeout_s())  # another batch came: drop its rows
            unique, inverse, rows, p = self._issue_pull(ids, tessera.current_step())
        p.wait(tessera.request_timeout_s())
        rows.requires_grad_(True)
        if torch.is_grad_enabled():
            rows.register_hook(lambda g, u=unique: self._push(u, g))
        out = rows.index_select(0, inverse)
        return out.reshape(tuple(ids.shape) + (self.dim,))

    def _issue_pull(self, ids, step):
        flat = ids.reshape(-1).contiguous()
        unique, inverse = torch.unique(flat, sorted=False, return_inverse=True)
        rows = torch.empty((unique.numel(), self.dim), dtype=torch.float32)
        h = tessera._session().pull_sparse(self.table_id, tessera._tensor_arg(unique), tessera._tensor_arg(rows), step,
                                           "rows of table '%s'" % self.table_name)
        p = _Pending()
        p.add(h, unique, rows)
        return unique, inverse, rows, p

    def prefetch(self, next_ids):
        """Pulls the rows of the next step's batch now (see the class comment)."""
        if self.table_id is None:
            raise TesseraError("Embedding %r is not declared yet" % self.table_name)
        if next_ids.dtype != torch.int64:
            raise TypeError("Embedding %r: ids have dtype %s, expected torch.int64" % (self.table_name, next_ids.dtype))
        if self._prefetched is not None:
            self._prefetched[5].wait(tessera.request_timeout_s())
        ids = next_ids.clone()
        step = tessera.current_step() + 1
        self._prefetched = (step, ids) + self._issue_pull(ids, step)

    def _push(self, unique, grad):
        step = tessera.current_step()
        if self._pushed_step == step:
            raise TesseraError("Embedding %r: a second backward in step %d (one push per table and step)"
                               % (self.table_name, step))
        self._pushed_step = step
        g = grad.detach().contiguous()
        h = tessera._session().push_sparse(self.table_id, tessera._tensor_arg(unique), tessera._tensor_arg(g), step,
                                           "gradient of table '%s'" % self.table_name)
        self._pending.add(h, unique, g)
        return grad

    def _end_of_step(self, step):
        """Every worker pushes every table every step (bsp counts them): an empty push
        when this worker's batch did not touch the table."""
        if self._pushed_step != step:
            empty_ids = torch.empty((0,), dtype=torch.int64)
            empty = torch.empty((0, self.dim), dtype=torch.float32)
            h = tessera._session().push_sparse(self.table_id, tessera._tensor_arg(empty_ids),
                                               tessera._tensor_arg(empty), step,
                                               "gradient of table '%s'" % self.table_name)
            self._pending.add(h, empty_ids, empty)
            self._pushed_step = step
        return self._pending


class DistributedOptimizer:
    """Wraps a torch optimizer: the servers run it, the workers push and pull.

    optimizer: torch.optim.SGD (momentum, Nesterov), Adam, AdamW or Adagrad; each
    parameter group's settings are declared to the servers with its parameters.
    named_parameters: model.named_parameters() (the names must be the same on every
    worker). sync: the job's --sync ("bsp", "ssp:K", "asp", "allreduce" or "hybrid",
    which route alike: dense parameters all-reduced, Embedding tables on the servers);
    None takes the job's. A different value than the job's is refused (the servers enforce the job's).
    seed: seeds the servers' initialisers.

    Gradient hooks push each gradient as backward produces it; step() pushes what
    backward did not touch (zeros: bsp counts one push per worker, parameter and step),
    pulls every parameter's next value straight into the model's tensors and waits.
    """

    def __init__(self, optimizer, named_parameters, sync=None, seed=0, bucket_mb=25.0):
        s = tessera._session()
        job_sync = tessera.sync_mode()
        if sync is not None and sync != job_sync:
            raise ValueError("tessera.torch.DistributedOptimizer(sync=%r): the job runs --sync=%s (the servers "
                             "enforce the job's mode; start the job with --sync=%s)" % (sync, job_sync, sync))
        # allreduce and hybrid route alike here: the dense parameters all-reduced, the
        # Embedding tables through the servers (which run bsp under both).
        self._allreduce = job_sync in ("allreduce", "hybrid")
        self.optimizer = optimizer
        self.sync = job_sync
        named = list(named_parameters)
        group_of = {}
        for g in optimizer.param_groups:
            for p in g["params"]:
                group_of[id(p)] = g
        self._params = []
        names = set()
        specs = []
        for i, (name, p) in enumerate(named):
            if name in names:
                raise ValueError("parameter name %r appears twice" % name)
            names.add(name)
            if id(p) not in group_of:
                raise ValueError("parameter %r is not in the wrapped optimizer's parameter groups" % name)
            _check_cpu_f32(p.data, "parameter %r" % name)
            init, scale = _initialiser(p.data)
            specs.append({"name": name, "kind": "dense", "shape": list(p.shape) or [1], "init": init,
                          "scale": scale, "seed": int(seed) * 1000003 + i,
                          "optimizer": server_optimizer(optimizer, group_of[id(p)])})
            self._params.append((name, p))
        self._tables = list(Embedding._tables)
        Embedding._tables.clear()
        specs += [t.spec for t in self._tables]
        ids = s.declare(specs)
        self._ids = ids[:len(self._params)]
        for t, tid in zip(self._tables, ids[len(self._params):]):
            t.table_id = tid
        self._pushed = [False] * len(self._params)
        self._pushes = _Pending()
        self._zeros = {}
        self._accumulators = []
        # Time in this layer (hooks and step() minus its waits) and in the waits, for
        # timing(): what the Python layer costs per step (docs/benchmarks-python.md).
        self._layer_s = 0.0
        self._wait_s = 0.0
        self._step_wait = 0.0
        self._steps = 0
        # The servers' initial values (or, resuming, the checkpoint's), for this step:
        # under allreduce too, so every worker starts from the same values.
        self._pull(tessera.current_step())
        if self._allreduce:
            # From here on the values live on the workers: GradSync fuses the gradients
            # into buckets of bucket_mb, all-reduces them (mean) while backward goes on,
            # and applies the optimizer to the model's tensors in place.
            tessera._state.allreduce = True
            s.allreduce_set_up(specs[:len(self._params)], [tessera._tensor_arg(p.data) for _, p in self._params],
                               float(bucket_mb))
        for i, (_, p) in enumerate(self._params):
            if p.requires_grad:
                acc = p.expand_as(p).grad_fn.next_functions[0][0]
                acc.register_hook(self._make_hook(i))
                self._accumulators.append(acc)  # the hook lives as long as its accumulator
        tessera._state.end_hooks.append(self._final_pull)

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    def zero_grad(self, set_to_none=False):
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def _make_hook(self, i):
        def hook(*_):
            self._push(i)
        return hook

    def timing(self):
        """Seconds spent so far in this layer's own Python and C++ calls (the gradient
        hooks, step() without its waits) and in step()'s waits, and the steps taken."""
        return {"layer_s": self._layer_s, "wait_s": self._wait_s, "steps": self._steps}

    def _push(self, i):
        t0 = time.perf_counter()
        try:
            self._push_now(i)
        finally:
            self._layer_s += time.perf_counter() - t0

    def _push_now(self, i):
        name, p = self._params[i]
        if self._pushed[i]:
            raise TesseraError("parameter %r: a second backward in step %d before step() (one push per step)"
                               % (name, tessera.current_step()))
        tessera._leave_boundary()
        g = p.grad
        if g is None:
            g = self._zeros.setdefault(i, torch.zeros_like(p.data))
        if self._allreduce:
            tessera._session().allreduce_grad_ready(i, tessera._tensor_arg(g))
            self._pushed[i] = True
            return
        h = tessera._session().push(self._ids[i], tessera._tensor_arg(g), tessera.current_step(),
                                    "gradient of %r" % name)
        self._pushes.add(h, g)
        self._pushed[i] = True

    def _pull(self, step):
        pulls = _Pending()
        s = tessera._session()
        for (name, p), pid in zip(self._params, self._ids):
            pulls.add(s.pull(pid, tessera._tensor_arg(p.data), step, "value of %r" % name), p.data)
        pulls.wait(tessera.request_timeout_s())

    def step(self, closure=None, loss=None, samples=0):
        """Ends the step: the remaining pushes, the pull of every parameter's new value
        (bsp: once every worker's gradient of this step is applied), the wait. `loss` and
        `samples` go to the coordinator's progress report (tessera status, metrics)."""
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        t0 = time.perf_counter()
        try:
            return self._step(loss, samples)
        finally:
            self._layer_s += time.perf_counter() - t0 - self._step_wait
            self._wait_s += self._step_wait
            self._steps += 1

    def _step(self, loss, samples):
        self._step_wait = 0.0
        tessera._leave_boundary()
        step = tessera.current_step()
        for i, pushed in enumerate(self._pushed):
            if not pushed:
                self._push_now(i)
        pending = [t._end_of_step(step) for t in self._tables]
        timeout = tessera.request_timeout_s()
        if self._allreduce:
            # The dense gradients are all-reduced; the tables' rows still go to the
            # servers, which run bsp under allreduce (the C++ trainer's hybrid routing).
            w0 = time.perf_counter()
            try:
                tessera._session().allreduce_finish_step()
            except TesseraError as e:
                tessera._raise_stopped(e)
            for t in pending:
                t.wait(timeout)
            self._step_wait = time.perf_counter() - w0
            self._pushed = [False] * len(self._params)
            loss_value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss or 0.0)
            tessera._end_step(loss_value if math.isfinite(loss_value) else 0.0, samples)
            return loss
        s = tessera._session()
        pulls = _Pending()
        for (name, p), pid in zip(self._params, self._ids):
            pulls.add(s.pull(pid, tessera._tensor_arg(p.data), step + 1, "value of %r" % name), p.data)
        w0 = time.perf_counter()
        self._pushes.wait(timeout)
        for t in pending:
            t.wait(timeout)
        pulls.wait(timeout)
        self._step_wait = time.perf_counter() - w0
        self._pushed = [False] * len(self._params)
        loss_value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss or 0.0)
        tessera._end_step(loss_value if math.isfinite(loss_value) else 0.0, samples)
        return loss

    def _final_pull(self):
        # After the barrier every worker's last push is in (ssp/asp too). Under allreduce
        # the model already holds the final values (the servers' copy is the initial one).
        if not self._allreduce:
            self._pull(tessera.current_step())

    def synchronize(self):
        """tessera.synchronize(): the barrier and the final pull."""
        tessera.synchronize()
