"""Exact resume of a Python job: N steps checkpointed at step N, the coordinator
SIGKILLed right after that commit (TESSERA_CRASH_AT=after_commit: the whole job dies),
then the same command resumed to 2N gives the params_digest of 2N steps in one go.
Preemption: SIGUSR1 to the launcher (what the Slurm template forwards) checkpoints at the
next boundary and every process exits 75; the resumed run ends at the uninterrupted
digest."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jobutil  # noqa: E402

jobutil.require_torch()

MNIST = "examples/python/mnist.py"


def read(path):
    with open(path) as f:
        return f.read()


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


    def test_the_final_step_is_checkpointed_with_the_scripts_state(self):
        # 7 steps, a checkpoint every 5: the final step's prepare comes with
        # synchronize()'s barrier and mnist.py saves its state after it.
        ck = os.path.join(self.tmp, "ck")
        flags = ["--steps=7", "--checkpoint_dir=" + ck, "--checkpoint_every_steps=5"]
        first = jobutil.run_job(MNIST, ARGS + flags, servers=1, workers=2)
        self.assertEqual(first.exit_code, 0, first.output[-4000:])
        steps = sorted(d for d in os.listdir(ck) if d.startswith("step-"))
        self.assertEqual(steps[-1], "step-000000000007", first.output[-3000:])
        for w in (0, 1):
            self.assertTrue(os.path.exists(os.path.join(ck, steps[-1], "worker-%d.pystate" % w)))
        again = jobutil.run_job(MNIST, ARGS + flags, servers=1, workers=2)
        self.assertEqual(again.exit_code, 0, again.output[-4000:])
        s = again.summary()
        self.assertEqual(s["resumed_from"], 7, s)
        self.assertTrue(s["worker_state_loaded"], s)
        self.assertEqual(s["params_digest"], first.summary()["params_digest"])

    def test_sigusr1_checkpoints_exits_75_and_the_resumed_run_matches(self):
        steps = ["--steps=300"]
        full = jobutil.run_job(MNIST, ARGS + steps, servers=1, workers=2)
        self.assertEqual(full.exit_code, 0, full.output[-4000:])
        digest = full.summary()["params_digest"]

        ck = os.path.join(self.tmp, "ck")
        flags = ["--checkpoint_dir=" + ck]
        log = os.path.join(self.tmp, "preempted.log")
        with open(log, "w") as out:
            p = subprocess.Popen(jobutil.launch_command(MNIST, ARGS + steps + flags, servers=1, workers=2),
                                 stdout=out, stderr=subprocess.STDOUT, cwd=jobutil.source_dir())
        deadline = time.time() + 120
        while time.time() < deadline and "step 100/300" not in read(log):
            time.sleep(0.05)
        p.send_signal(signal.SIGUSR1)
        code = p.wait(timeout=120)
        output = read(log)
        self.assertEqual(code, 75, output[-4000:])
        committed = sorted(d for d in os.listdir(ck) if d.startswith("step-"))
        self.assertEqual(len(committed), 1, output[-3000:])
        at = int(committed[0][len("step-"):])
        self.assertTrue(100 <= at < 300, committed)

        resumed = jobutil.run_job(MNIST, ARGS + steps + flags, servers=1, workers=2)
        self.assertEqual(resumed.exit_code, 0, resumed.output[-4000:])
        s = resumed.summary()
        self.assertEqual(s["resumed_from"], at, s)
        self.assertTrue(s["worker_state_loaded"], s)
        self.assertEqual(s["params_digest"], digest, resumed.output[-3000:])


if __name__ == "__main__":
    unittest.main()
