"""examples/python/ctr.py as a real job: server-side Embedding tables + an MLP on a9a
reach the AUC of `tessera train --model=widedeep` (examples/widedeep_a9a.flags, run in
the same test) within 0.005."""

import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jobutil  # noqa: E402

jobutil.require_torch()


class CtrJob(unittest.TestCase):
    def test_embedding_model_matches_the_cpp_widedeep_auc(self):
        cpp = subprocess.run([jobutil.tessera_bin(), "launch", "--servers", "2", "--workers", "2", "--flagfile",
                              "examples/widedeep_a9a.flags", "--log_every=0"], cwd=jobutil.source_dir(),
                             capture_output=True, text=True, timeout=120)
        cpp_run = jobutil.Run(cpp.returncode, cpp.stdout + cpp.stderr)
        self.assertEqual(cpp_run.exit_code, 0, cpp_run.output[-3000:])
        cpp_auc = cpp_run.summary()["test_auc"]
        self.assertGreater(cpp_auc, 0.9)

        run = jobutil.run_job("examples/python/ctr.py", ["--epochs=3"], servers=2, workers=2, timeout_s=150)
        self.assertEqual(run.exit_code, 0, run.output[-4000:])
        s = run.summary()
        self.assertIsNotNone(s, run.output[-4000:])
        self.assertGreaterEqual(s["test_auc"], cpp_auc - 0.005, "python %s vs C++ widedeep %s" % (s, cpp_auc))


if __name__ == "__main__":
    unittest.main()
