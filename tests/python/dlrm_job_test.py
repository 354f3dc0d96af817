"""examples/python/ctr.py on Criteo-shaped data (it runs examples/python/dlrm.py there) as
a real job: the PyTorch DLRM with server-side Embedding tables reaches the test AUC of
`tessera train --model=dlrm` (examples/dlrm_criteo.flags, run in the same test on the
same generated data) within 0.005, and both come near the generator's planted ceiling."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jobutil  # noqa: E402

jobutil.require_torch()

ROWS = 300000  # the AUC of one seed varies less than at 200,000 (docs/python.md#criteo); ~10 s of Python training


class DlrmJob(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="tessera-dlrm-py-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)

    def test_python_dlrm_matches_the_cpp_dlrm_auc(self):
        gen = subprocess.run([jobutil.tessera_bin(), "datagen", "criteo", "--rows", str(ROWS), "--seed", "1",
                              "-o", self.dir], capture_output=True, text=True, timeout=60)
        self.assertEqual(gen.returncode, 0, gen.stdout + gen.stderr)
        with open(os.path.join(self.dir, "planted.txt")) as f:
            planted = float(re.search(r"AUC ([0-9.]+)", f.read()).group(1))

        cpp = subprocess.run([jobutil.tessera_bin(), "launch", "--servers", "2", "--workers", "2", "--flagfile",
                              "examples/dlrm_criteo.flags", "--data=" + self.dir, "--log_every=0"],
                             cwd=jobutil.source_dir(), capture_output=True, text=True, timeout=120,
                             env=dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1"))
        cpp_run = jobutil.Run(cpp.returncode, cpp.stdout + cpp.stderr)
        self.assertEqual(cpp_run.exit_code, 0, cpp_run.output[-3000:])
        c = cpp_run.summary()
        self.assertIsNotNone(c, cpp_run.output[-3000:])

        # Through ctr.py, as the issue names it: a Criteo directory makes it run dlrm.py.
        run = jobutil.run_job("examples/python/ctr.py", ["--data", self.dir], servers=2, workers=2, timeout_s=150)
        self.assertEqual(run.exit_code, 0, run.output[-4000:])
        p = run.summary()
        self.assertIsNotNone(p, run.output[-4000:])
        self.assertEqual(p["model"], "dlrm", p)
        self.assertEqual(p["steps"], c["steps"], "same plan as the C++ trainer: %s vs %s" % (p, c))
        self.assertEqual(p["test_examples"], c["test_examples"], p)
        for who, auc in (("C++", c["test_auc"]), ("python", p["test_auc"])):
            # Trained (an untrained model scores ~0.5-0.55) and near the planted ceiling.
            self.assertGreater(auc, 0.80, "%s AUC %s (planted %s)" % (who, auc, planted))
            self.assertLess(planted - auc, 0.035, "%s AUC %s (planted %s)" % (who, auc, planted))
        self.assertAlmostEqual(p["test_auc"], c["test_auc"], delta=0.005,
                               msg="python %s vs C++ dlrm %s (planted %s)" % (p, c["test_auc"], planted))


if __name__ == "__main__":
    unittest.main()
