"""examples/python/mnist.py as a real job: `tessera launch --servers 2 --workers 2
--program python3`, coordinator and servers included, reaches its accuracy threshold;
under --sync=allreduce (workers under mpirun, GradSync's fused all-reduce) it ends at
bsp's parameters bit for bit; a DistributedOptimizer asked for another sync mode than
the job's is refused."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jobutil  # noqa: E402

jobutil.require_torch()

MNIST = "examples/python/mnist.py"


class MnistJob(unittest.TestCase):
    def test_cnn_through_two_servers_reaches_98_percent(self):
        # One epoch of a small CNN, 2 workers x 64 per step (938 steps... 468 per worker).
        run = jobutil.run_job(MNIST, ["--model=cnn", "--epochs=1", "--batch_size=64", "--lr=0.002"],
                              servers=2, workers=2, timeout_s=170)
        self.assertEqual(run.exit_code, 0, run.output[-4000:])
        s = run.summary()
        self.assertIsNotNone(s, run.output[-4000:])
        self.assertEqual(s["workers"], 2)
        self.assertGreaterEqual(s["test_accuracy"], 0.98, s)
        self.assertIn("all 5 processes exited cleanly", run.output)

    def test_allreduce_ends_at_the_bsp_parameters_bitwise(self):
        args = ["--model=mlp", "--hidden=32", "--train_limit=4000", "--test_limit=500", "--batch_size=32",
                "--steps=40", "--epochs=100"]
        bsp = jobutil.run_job(MNIST, args, servers=1, workers=2)
        self.assertEqual(bsp.exit_code, 0, bsp.output[-4000:])
        ar = jobutil.run_job(MNIST, args, servers=1, workers=2, launcher_args=["--sync=allreduce"])
        self.assertEqual(ar.exit_code, 0, ar.output[-4000:])
        self.assertIn("workers run under mpirun (all-reduce path)", ar.output)
        self.assertEqual(ar.summary()["sync"], "allreduce")
        self.assertEqual(bsp.summary()["sync"], "bsp")
        self.assertEqual(ar.summary()["params_digest"], bsp.summary()["params_digest"])

    def test_bad_arguments_inside_a_job_are_clear_python_exceptions(self):
        # One job, several refusals, each printed as "<case>: <exception type>: <message>".
        code = r"""
import sys, torch, tessera, tessera.torch

def attempt(case, fn):
    try:
        fn()
        print("%s: accepted" % case, flush=True)
    except Exception as e:
        print("%s: %s: %s" % (case, type(e).__name__, e), flush=True)

tessera.init()
m = torch.nn.Linear(3, 2)
attempt("sync", lambda: tessera.torch.DistributedOptimizer(torch.optim.SGD(m.parameters(), lr=0.1),
                                                           m.named_parameters(), sync="asp"))
attempt("rmsprop", lambda: tessera.torch.DistributedOptimizer(torch.optim.RMSprop(m.parameters(), lr=0.1),
                                                              m.named_parameters()))
d = torch.nn.Linear(3, 2).double()
attempt("float64", lambda: tessera.torch.DistributedOptimizer(torch.optim.SGD(d.parameters(), lr=0.1),
                                                              d.named_parameters()))
emb = tessera.torch.Embedding("t", 4)
opt = tessera.torch.DistributedOptimizer(torch.optim.SGD(m.parameters(), lr=0.1), m.named_parameters())
attempt("ids", lambda: emb(torch.tensor([1.0, 2.0])))
s = tessera._session()
grad = torch.zeros(3, 2).t()  # [2, 3] but not contiguous
attempt("layout", lambda: s.push(opt._ids[0], tessera._tensor_arg(grad), 0, "gradient of 'weight'"))
attempt("dtype", lambda: s.push(opt._ids[0], tessera._tensor_arg(torch.zeros(2, 3, dtype=torch.float16)), 0,
                                "gradient of 'weight'"))
attempt("save", lambda: tessera.save_worker_state(b"x"))
m(torch.ones(1, 3)).sum().backward()
opt.step()
opt.synchronize()
tessera.finish()
"""
        path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "tessera_refusals_%d.py" % os.getpid())
        with open(path, "w") as f:
            f.write(code)
        try:
            run = jobutil.run_job(path, [], servers=1, workers=1, timeout_s=90)
        finally:
            os.unlink(path)
        self.assertEqual(run.exit_code, 0, run.output[-3000:])
        out = run.output
        for want in [
                "sync: ValueError: tessera.torch.DistributedOptimizer(sync='asp'): the job runs --sync=bsp",
                "rmsprop: TypeError: tessera.torch: the servers cannot run torch.optim.rmsprop.RMSprop",
                "float64: TypeError: parameter 'weight' has dtype torch.float64: Tessera takes torch.float32",
                "ids: TypeError: Embedding 't': ids have dtype torch.float32, expected torch.int64",
                "layout: ValueError: gradient of 'weight' is not contiguous",
                "dtype: TypeError: gradient of 'weight' has dtype torch.float16: Tessera takes torch.float32",
                "save: TesseraError: save_worker_state: no checkpoint is due at step 0"]:
            self.assertIn(want, out)
        self.assertIn("all 3 processes exited cleanly", out)

    def test_a_blocking_wait_releases_the_gil(self):
        # Worker 1 waits at the barrier for worker 0, which sleeps 2 s first; a Python
        # thread of worker 1 keeps counting meanwhile only if the wait released the GIL.
        code = ("import threading, time, tessera\n"
                "tessera.init()\n"
                "count = [0]\n"
                "stop = threading.Event()\n"
                "def spin():\n"
                "    while not stop.is_set():\n"
                "        count[0] += 1\n"
                "        time.sleep(0.001)\n"
                "if tessera.rank() == 0:\n"
                "    time.sleep(2)\n"
                "    tessera.synchronize()\n"
                "else:\n"
                "    t = threading.Thread(target=spin)\n"
                "    t.start()\n"
                "    time.sleep(0.1)\n"
                "    before = count[0]\n"
                "    t0 = time.time()\n"
                "    tessera.synchronize()\n"
                "    waited = time.time() - t0\n"
                "    stop.set(); t.join()\n"
                "    print('WAITED %.2f COUNTED %d' % (waited, count[0] - before - 1), flush=True)\n"
                "tessera.finish()\n")
        path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "tessera_gil_%d.py" % os.getpid())
        with open(path, "w") as f:
            f.write(code)
        try:
            run = jobutil.run_job(path, [], servers=1, workers=2, timeout_s=90)
        finally:
            os.unlink(path)
        self.assertEqual(run.exit_code, 0, run.output[-3000:])
        line = [l for l in run.output.splitlines() if "WAITED" in l]
        self.assertEqual(len(line), 1, run.output[-3000:])
        waited, counted = float(line[0].split()[-3]), int(line[0].split()[-1])
        self.assertGreater(waited, 1.0, line[0])   # the barrier did block
        self.assertGreater(counted, 50, line[0])   # ~1 per ms while it blocked

    def test_an_exception_in_a_worker_stops_the_job_with_its_reason(self):
        code = ("import torch, tessera, tessera.torch\n"
                "tessera.init()\n"
                "m = torch.nn.Linear(2, 2)\n"
                "opt = tessera.torch.DistributedOptimizer(torch.optim.SGD(m.parameters(), lr=0.1), m.named_parameters())\n"
                "if tessera.rank() == 1:\n"
                "    raise KeyError('bad batch')\n"
                "for _ in range(1000):\n"
                "    m(torch.ones(1, 2)).sum().backward()\n"
                "    opt.step()\n")
        path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "tessera_raise_%d.py" % os.getpid())
        with open(path, "w") as f:
            f.write(code)
        try:
            run = jobutil.run_job(path, [], servers=1, workers=2, timeout_s=90)
        finally:
            os.unlink(path)
        self.assertEqual(run.exit_code, 1, run.output[-3000:])  # kExitFailure: the script's own error
        self.assertIn("worker failed: Internal: the script raised KeyError: 'bad batch'", run.output)
        self.assertIn("worker 1 (rank 3", run.output)


if __name__ == "__main__":
    unittest.main()
