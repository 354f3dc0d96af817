"""examples/python/dlrm.py's Criteo loader without a job: the transforms, keys, split
and shard rules of the C++ loader (worker/data/criteo.h), gzip = plain, and file:line
errors."""

import gzip
import math
import os
import shutil
import sys
import tempfile
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jobutil  # noqa: E402

jobutil.require_torch()
sys.path.insert(0, os.path.join(jobutil.source_dir(), "examples", "python"))
import dlrm  # noqa: E402


def line(label="1", dense=None, cats=None):
    dense = dense if dense is not None else [""] * 13
    cats = cats if cats is not None else [""] * 26
    return "\t".join([label] + dense + cats)


class Parse(unittest.TestCase):
    def test_transforms_and_keys_as_the_cpp_loader(self):
        dense = ["7", "", "-5", "0", "123456789"] + ["1"] * 8
        cats = ["00000000", "ffffffff", "1a", "", "ABCDEF12"] + ["0"] * 21
        y, d, k = dlrm.parse("f", [(1, line("1", dense, cats)), (2, line("0"))])
        np.testing.assert_array_equal(y, np.array([1, 0], np.float32))
        self.assertEqual(d.dtype, np.float32)
        self.assertEqual(d[0, 0], np.float32(math.log1p(7)))
        self.assertEqual(d[0, 1], 0)  # empty
        self.assertEqual(d[0, 2], 0)  # negative: log(1 + max(x, 0))
        self.assertEqual(d[0, 4], np.float32(math.log1p(123456789)))
        self.assertEqual(k.dtype, np.int64)
        self.assertEqual(list(k[0, :5]), [1, 2 ** 32, 27, 0, 0xABCDEF12 + 1])  # hash + 1, empty = 0
        self.assertEqual(list(d[1]), [0] * 13)
        self.assertEqual(list(k[1]), [0] * 26)

    def test_bad_lines_name_file_line_and_field(self):
        good = (1, line())
        cases = [
            ("1\t2\t3", "f:5: 3 tab-separated fields, expected 40"),
            (line("2"), "f:5: field label '2': expected 0 or 1"),
            (line("1", ["+5"] + [""] * 12), "f:5: field I1 '+5': expected an integer or nothing"),
            (line("1", [""] * 12 + ["5-"]), "f:5: field I13 '5-': expected an integer or nothing"),
            (line("1", None, ["0x12"] + [""] * 25), "f:5: field C1 '0x12': expected 1 to 8 hex digits or nothing"),
            (line("1", None, [""] * 25 + ["123456789"]),
             "f:5: field C26 '123456789': expected 1 to 8 hex digits or nothing"),
        ]
        for text, want in cases:
            with self.assertRaises(dlrm.DataError) as e:
                dlrm.parse("f", [good, (5, text)])
            self.assertTrue(str(e.exception).startswith(want), (str(e.exception), want))


class Files(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="tessera-dlrm-data-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)

    def write(self, name, lines):
        p = os.path.join(self.dir, name)
        text = "".join(x + "\n" for x in lines)
        if name.endswith(".gz"):
            with gzip.open(p, "wt") as f:
                f.write(text)
        else:
            with open(p, "w") as f:
                f.write(text)
        return p

    def rows(self, n):
        return [line(str(i % 2), [str(i)] * 13, ["%x" % (i + f) for f in range(26)]) for i in range(n)]

    def test_gzip_and_plain_load_the_same_examples_skipping_blank_lines(self):
        rows = self.rows(30)
        plain = self.write("a.txt", rows[:10] + ["", " \t"] + rows[10:])
        gz = self.write("b.txt.gz", rows)
        self.assertEqual(dlrm.count(plain), 30)
        a, b = dlrm.load_range(plain, 5, 25, chunk=7), dlrm.load_range(gz, 5, 25)
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
        self.assertEqual(int(a[2][0, 0]), 5 + 1)  # example 5, blank lines not counted
        with self.assertRaises(dlrm.DataError) as e:
            dlrm.load_range(gz, 0, 31)
        self.assertIn("30 examples, expected at least 31", str(e.exception))

    def test_split_and_shards_as_plan_criteo(self):
        self.write("train.txt", self.rows(70))
        train, valid = dlrm.split_paths(self.dir)
        self.assertIsNone(valid)
        # No valid.txt: the last seventh (10 of 70) is held out; shards are ShardRange's.
        self.assertEqual(dlrm.plan(train, valid, 0, 3, 0, 0), (60, (0, 20), (60, 70)))
        self.assertEqual(dlrm.plan(train, valid, 2, 3, 0, 0), (60, (40, 60), (60, 70)))
        self.assertEqual(dlrm.plan(train, valid, 1, 2, 25, 4), (25, (12, 25), (60, 64)))
        self.write("valid.txt.gz", self.rows(9))
        train, valid = dlrm.split_paths(self.dir)
        self.assertTrue(valid.endswith("valid.txt.gz"))
        self.assertEqual(dlrm.plan(train, valid, 1, 4, 0, 0), (70, (17, 35), (0, 9)))
        with self.assertRaises(dlrm.DataError) as e:
            dlrm.plan(train, valid, 0, 4, 3, 0)
        self.assertIn("3 training examples for 4 workers", str(e.exception))

    def test_missing_training_file_names_the_directory(self):
        with self.assertRaises(dlrm.DataError) as e:
            dlrm.split_paths(self.dir)
        self.assertIn(self.dir + ": no Criteo training file", str(e.exception))
        self.assertFalse(dlrm.is_criteo_dir(self.dir))


if __name__ == "__main__":
    unittest.main()
