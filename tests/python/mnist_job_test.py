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

    def test_sync_mode_other_than_the_jobs_is_refused(self):
        code = ("import sys, torch, tessera, tessera.torch\n"
                "tessera.init()\n"
                "m = torch.nn.Linear(2, 2)\n"
                "try:\n"
                "    tessera.torch.DistributedOptimizer(torch.optim.SGD(m.parameters(), lr=0.1),\n"
                "                                       m.named_parameters(), sync='asp')\n"
                "except ValueError as e:\n"
                "    print('REFUSED:', e, flush=True)\n"
                "    sys.exit(3)\n")
        path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "tessera_sync_refusal_%d.py" % os.getpid())
        with open(path, "w") as f:
            f.write(code)
        try:
            run = jobutil.run_job(path, [], servers=1, workers=1, timeout_s=60)
        finally:
            os.unlink(path)
        self.assertEqual(run.exit_code, 3, run.output[-3000:])
        self.assertIn("REFUSED: tessera.torch.DistributedOptimizer(sync='asp'): the job runs --sync=bsp", run.output)


if __name__ == "__main__":
    unittest.main()
