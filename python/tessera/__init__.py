"""Tessera from Python: join a Tessera job as a worker (docs/python.md).

    import tessera, tessera.torch
    tessera.init()                       # joins the job the launcher started
    opt = tessera.torch.DistributedOptimizer(torch.optim.Adam(model.parameters()),
                                             model.named_parameters())
    ... loss.backward(); opt.step() ...
    opt.synchronize()                    # every worker's last update is in the model
    tessera.finish()

The coordinator and the servers are the usual Tessera roles: under `tessera launch
--program python3 -- script.py` (or mpirun, srun, torchrun) every rank runs the script,
and in the coordinator's and the servers' processes tessera.init() runs that role until
the job ends and then exits the process with the role's exit code; only the workers
return from it.

One job per process: a process joins once, and its worker state (the step counter, the
checkpoint answers) lives in this module.
"""

import atexit
import os
import sys

# Open MPI (the all-reduce path) loads its components as plugins that resolve symbols of
# libmpi: load the extension, which links libmpi, with its symbols global.
_flags = sys.getdlopenflags()
sys.setdlopenflags(_flags | os.RTLD_GLOBAL)
try:
    from ._core import TesseraError
finally:
    sys.setdlopenflags(_flags)

__all__ = [
    "TesseraError", "JobStopped", "init", "finish", "rank", "size", "num_servers", "sync_mode",
    "resume_step", "current_step", "checkpoint_due", "save_worker_state", "load_worker_state",
    "preempted", "params_digest",
]

# Exit code of a job stopped by preemption (common/exit_codes.h kExitPreempted).
EXIT_PREEMPTED = 75


class JobStopped(SystemExit):
    """The coordinator stopped the job (preemption after its checkpoint, a failed peer).

    A SystemExit: left uncaught, the script exits with the code the coordinator asked for
    (75 after a preemption checkpoint, so a batch script requeues it).
    """

    def __init__(self, code, reason):
        super().__init__(code)
        self.reason = reason

    def __str__(self):
        return "the job was stopped (exit code %d): %s" % (self.code, self.reason)


class _State:
    """This process's worker: the session and the step boundary it stands at."""

    def __init__(self):
        self.session = None
        self.info = None
        self.step = 0               # the next step to run: the boundary the worker stands at
        self.answered = -1          # the newest checkpoint step answered
        self.checkpoint_aware = False  # the script asked checkpoint_due() at least once
        self.finished = False
        self.failure = None         # an uncaught exception's text
        self.end_hooks = []         # run by synchronize(): the final pulls
        self.allreduce = False      # --sync=allreduce: the dense values live on the workers


_state = _State()


def _session():
    if _state.session is None:
        raise TesseraError("tessera.init() has not joined a job yet")
    if _state.finished:
        raise TesseraError("this worker has already finished (tessera.finish())")
    return _state.session


def init(args=None):
    """Joins the job this process was started in.

    args: the command-line arguments to take Tessera's job flags from (--sync,
    --checkpoint_dir, --request_timeout_s, ...; the ones `tessera flags` lists). Default:
    sys.argv[1:], and the job flags are then removed from sys.argv so the script's own
    argument parser sees only its own flags.

    Returns this worker's index. In the coordinator's and the servers' processes it does
    not return: the role runs until the job ends and the process exits with its code.
    Raises TesseraError outside a job, or when the job cannot be joined.
    """
    if _state.session is not None:
        raise TesseraError("tessera.init(): this process has already joined a job")
    from_argv = args is None
    if from_argv:
        args = sys.argv[1:]
    program = sys.argv[0] if sys.argv and sys.argv[0] else "script.py"
    session, code, rest = _core_join(list(args), program)
    if session is None:
        # This rank was the coordinator or a server: its role has ended.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    if code != 0:
        raise TesseraError("tessera.init(): joining the job failed with exit code %d" % code)
    if from_argv:
        sys.argv[1:] = rest
    _state.session = session
    _state.info = session.info()
    _state.step = max(0, _state.info["resume_step"])
    _state.answered = -1
    atexit.register(_at_exit)
    _previous_hook = sys.excepthook

    def _hook(kind, value, tb):
        _state.failure = "%s: %s" % (kind.__name__, value)
        _previous_hook(kind, value, tb)

    sys.excepthook = _hook
    return _state.info["worker_index"]


def _core_join(args, program):
    from . import _core
    return _core.join(args, program)


def rank():
    """This worker's index, 0 .. size()-1."""
    _session()
    return _state.info["worker_index"]


def size():
    """Number of workers in the job."""
    _session()
    return _state.info["num_workers"]


def num_servers():
    _session()
    return _state.info["num_servers"]


def sync_mode():
    """The job's --sync: bsp, ssp:K, asp, allreduce or hybrid."""
    _session()
    return _state.info["sync"]


def resume_step():
    """The step this run resumes at (the checkpoint's), or -1 for a fresh start."""
    _session()
    return _state.info["resume_step"]


def current_step():
    """The step the worker runs next (the boundary it stands at between steps)."""
    return _state.step


def request_timeout_s():
    _session()
    return _state.info["request_timeout_s"]


def checkpoint_due():
    """True when the coordinator asked for a checkpoint at the current step boundary.

    Call it between steps (after opt.step()); when it is True, call save_worker_state()
    with what the script needs to resume here (its data cursor, RNG states). A script
    that asks at least once is expected to save every time: a due checkpoint left
    without its state is refused (the coordinator tries a later step). A script that
    never asks has its checkpoints answered without worker state.
    """
    s = _session()
    _state.checkpoint_aware = True
    return not _state.allreduce and s.pending_checkpoint() == _state.step and _state.answered != _state.step


def save_worker_state(data):
    """Writes `data` (bytes) as this worker's part of the due checkpoint and answers it.

    Raises TesseraError when no checkpoint is due at this boundary (see checkpoint_due()).
    """
    s = _session()
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("save_worker_state takes bytes, got %s" % type(data).__name__)
    if s.pending_checkpoint() != _state.step or _state.answered == _state.step:
        raise TesseraError("save_worker_state: no checkpoint is due at step %d (ask checkpoint_due() first)"
                           % _state.step)
    s.answer_checkpoint(_state.step, True, "", bytes(data))
    _state.answered = _state.step


def load_worker_state():
    """The bytes save_worker_state() wrote into the checkpoint this run resumed from,
    or None (a fresh start, or the checkpoint holds no state of this worker)."""
    return _session().load_worker_state()


def preempted():
    """True once the coordinator is stopping the job after a preemption checkpoint."""
    return _state.session is not None and not _state.finished and \
        _state.session.requested_exit_code() == EXIT_PREEMPTED


def _leave_boundary():
    """Called before the worker starts the step at _state.step: answers a prepare of this
    boundary (or an earlier one) the script did not answer itself."""
    s = _state.session
    want = s.pending_checkpoint()
    if want < 0 or want > _state.step or want == _state.answered:
        return
    if _state.allreduce:
        s.answer_checkpoint(want, False, "checkpoints of --sync=allreduce are not supported from Python "
                            "(docs/python.md)", None)
    elif want == _state.step and not _state.checkpoint_aware:
        s.answer_checkpoint(want, True, "", None)
    elif want == _state.step:
        s.answer_checkpoint(want, False, "worker %d: the script did not save its state at step %d"
                            % (_state.info["worker_index"], want), None)
    else:
        # The prepare arrived after this worker passed the step: its state there is gone.
        s.answer_checkpoint(want, False, "worker %d was at step %d when asked for step %d (too late)"
                            % (_state.info["worker_index"], _state.step, want), None)
    _state.answered = want


def _end_step(loss, samples):
    """A step finished: report it and move to the next boundary."""
    _state.session.report_step(_state.step, float(loss), int(samples))
    _state.step += 1


def _raise_stopped(error):
    """A request failed: a stopping job becomes JobStopped, anything else TesseraError."""
    s = _state.session
    code = s.requested_exit_code()
    if code != 0:
        reason = s.health() or str(error)
        _state.finished = True
        s.finish(False, reason)
        raise JobStopped(code, reason) from error
    raise error


def synchronize():
    """Waits for every worker at a barrier, then runs the end hooks (the optimizers'
    final pulls): afterwards the model holds the job's final values on every worker.

    It ends training: with periodic checkpoints on, the coordinator then checkpoints the
    job's final step. A script that saves worker state (it calls checkpoint_due()) is
    asked again right after this call: when checkpoint_due() is True, save as in the
    loop; finish() refuses a final checkpoint left without state."""
    s = _session()
    _leave_boundary()
    try:
        # allreduce: worker checkpoints are not supported from Python (_leave_boundary).
        s.barrier(request_timeout_s(), -1 if _state.allreduce else _state.step)
        if not _state.checkpoint_aware:
            _leave_boundary()  # the final checkpoint's prepare came with the barrier
        for hook in list(_state.end_hooks):
            hook()
    except TesseraError as e:
        _raise_stopped(e)


def finish():
    """Tells the coordinator this worker is done. Returns the process exit code the job
    gives this worker (0 when it ended well). Called at exit when the script does not;
    a script that ends with an uncaught exception fails the job with its text (exit 1,
    or the coordinator's code when the job was already stopping)."""
    if _state.session is None or _state.finished:
        return 0
    _leave_boundary()  # a final checkpoint the script did not answer is refused, not left waiting
    _state.finished = True
    return _state.session.finish(True, "done")


def params_digest(tensors):
    """The digest `tessera train` prints as params_digest (FNV-1a over the float32 bytes,
    in order), as 16 hex digits."""
    from . import _core
    return _core.params_digest([_tensor_arg(t.detach()) for t in tensors])


def _tensor_arg(t):
    """A torch tensor as the extension takes it: no libtorch on the C++ side."""
    return (t.data_ptr(), tuple(t.shape), tuple(t.stride()), str(t.dtype), str(t.device))


def _at_exit():
    if _state.session is None or _state.finished:
        return
    _state.finished = True
    if _state.failure is not None:
        code = _state.session.finish(False, "the script raised " + _state.failure)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code if code != 0 else 1)
    _state.session.finish(True, "done")
