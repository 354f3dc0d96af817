"""Exact resume of a Python job: N steps checkpointed at step N, the coordinator
SIGKILLed right after that commit (TESSERA_CRASH_AT=after_commit: the whole job dies),
then the same command resumed to 2N gives the params_digest of 2N steps in one go."""

import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jobutil  # noqa: E402

jobutil.require_torch()

MNIST = "examples/python/mnist.py"
ARGS = ["--model=mlp", "--hidden=32", "--train_limit=4000", "--test_limit=500", "--batch_size=32",
        "--epochs=100", "--lr=0.002", "--seed=3"]


class ResumeJob(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="tessera_py_resume_")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_sigkill_after_commit_then_resume_gives_the_uninterrupted_digest(self):
        full = jobutil.run_job(MNIST, ARGS + ["--steps=40"], servers=2, workers=2)
        self.assertEqual(full.exit_code, 0, full.output[-4000:])
        digest = full.summary()["params_digest"]
        self.assertEqual(len(digest), 16)

        ck = os.path.join(self.tmp, "ck")
        flags = ["--checkpoint_dir=" + ck, "--checkpoint_every_steps=20"]
        killed = jobutil.run_job(MNIST, ARGS + ["--steps=20"] + flags, servers=2, workers=2,
                                 env={"TESSERA_CRASH_AT": "after_commit"})
        self.assertNotEqual(killed.exit_code, 0, killed.output[-4000:])
        self.assertIn("crashing at after_commit", killed.output)
        steps = sorted(d for d in os.listdir(ck) if d.startswith("step-"))
        self.assertEqual(steps, ["step-000000000020"], killed.output[-3000:])
        for w in (0, 1):  # each worker's own state went into the checkpoint
            self.assertTrue(os.path.exists(os.path.join(ck, steps[0], "worker-%d.pystate" % w)))

        resumed = jobutil.run_job(MNIST, ARGS + ["--steps=40"] + flags, servers=2, workers=2)
        self.assertEqual(resumed.exit_code, 0, resumed.output[-4000:])
        self.assertIn("resuming from the checkpoint of step 20", resumed.output)
        s = resumed.summary()
        self.assertEqual(s["resumed_from"], 20, s)       # it ran steps 20..39 only
        self.assertTrue(s["worker_state_loaded"], s)
        self.assertEqual(s["params_digest"], digest, resumed.output[-3000:])


if __name__ == "__main__":
    unittest.main()
