"""examples/python/dlrm.py as real jobs beyond the AUC (dlrm_job_test.py): its Embedding
tables on the servers while the MLPs are all-reduced (--sync=allreduce and hybrid) end
at the bsp run's values, and a malformed data file is a clear error."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jobutil  # noqa: E402

jobutil.require_torch()


class DlrmSyncJob(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="tessera-dlrm-py-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)

    def test_tables_on_the_servers_with_allreduced_dense_parameters_end_at_bsp_values(self):
        # --sync=allreduce or hybrid with Embedding tables: the MLPs all-reduced among the
        # workers, the tables through the servers (bsp there), as the C++ --sync=hybrid.
        gen = subprocess.run([jobutil.tessera_bin(), "datagen", "criteo", "--rows", "20000", "--seed", "2",
                              "-o", self.dir], capture_output=True, text=True, timeout=60)
        self.assertEqual(gen.returncode, 0, gen.stdout + gen.stderr)
        out = {}
        for sync in ("bsp", "allreduce", "hybrid"):
            run = jobutil.run_job("examples/python/dlrm.py", ["--data", self.dir], servers=2, workers=2,
                                  timeout_s=120, launcher_args=("--sync=" + sync,))
            self.assertEqual(run.exit_code, 0, run.output[-4000:])
            out[sync] = run.summary()
            self.assertIsNotNone(out[sync], run.output[-4000:])
            self.assertEqual(out[sync]["sync"], sync)
        self.assertGreater(out["bsp"]["test_auc"], 0.7, out)
        for sync in ("allreduce", "hybrid"):
            self.assertEqual(out[sync]["params_digest"], out["bsp"]["params_digest"], out)
            self.assertEqual(out[sync]["test_auc"], out["bsp"]["test_auc"], out)

    def test_bad_data_is_a_clear_error(self):
        with open(os.path.join(self.dir, "train.txt"), "w") as f:
            f.write("1\t2\t3\n")
        run = jobutil.run_job("examples/python/dlrm.py", ["--data", self.dir], servers=1, workers=1, timeout_s=60)
        self.assertNotEqual(run.exit_code, 0, run.output[-3000:])
        self.assertIn("train.txt:1: 3 tab-separated fields, expected 40", run.output, run.output[-3000:])


if __name__ == "__main__":
    unittest.main()
