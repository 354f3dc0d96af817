"""The Python package without a job: every bad input is a clear Python exception
(tessera.init() outside a job, a wrong dtype, a non-contiguous or GPU tensor, an
unsupported optimizer or setting), and the digest is `tessera train`'s."""

import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jobutil  # noqa: E402

jobutil.require_torch()

import torch  # noqa: E402

import tessera  # noqa: E402
import tessera.torch  # noqa: E402
from tessera import _core  # noqa: E402


def arg(t):
    return tessera._tensor_arg(t)


class InitOutsideAJob(unittest.TestCase):
    def test_raises_tessera_error_naming_the_launchers(self):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("TESSERA_", "OMPI_", "PMI_", "PMIX_", "SLURM_")) and
               k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
        code = ("import tessera\n"
                "try:\n"
                "    tessera.init([])\n"
                "except tessera.TesseraError as e:\n"
                "    print('ERROR:', e)\n")
        p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("ERROR: tessera.init(): this process is not part of a Tessera job", p.stdout)
        self.assertIn("tessera launch", p.stdout)

    def test_calls_before_init_raise(self):
        with self.assertRaisesRegex(tessera.TesseraError, "has not joined a job"):
            tessera.rank()


class TensorChecks(unittest.TestCase):
    def test_float32_contiguous_is_accepted(self):
        _core.check_f32(arg(torch.zeros(3, 4)), "t", 12)

    def test_wrong_dtype_is_a_type_error(self):
        with self.assertRaisesRegex(TypeError, "gradient of 'w' has dtype torch.float64: Tessera takes torch.float32"):
            _core.check_f32(arg(torch.zeros(3, 4, dtype=torch.float64)), "gradient of 'w'", 12)

    def test_non_contiguous_is_a_value_error(self):
        t = torch.zeros(4, 3).t()
        with self.assertRaisesRegex(ValueError, r"is not contiguous \(shape \[3, 4\], strides \[1, 3\]\)"):
            _core.check_f32(arg(t), "value of 'w'", 12)

    def test_wrong_size_names_both_counts(self):
        with self.assertRaisesRegex(ValueError, "has 6 elements .*expected 12"):
            _core.check_f32(arg(torch.zeros(2, 3)), "t", 12)

    def test_gpu_device_is_refused(self):
        bad = (1234, (2,), (1,), "torch.float32", "cuda:0")
        with self.assertRaisesRegex(ValueError, "is on device cuda:0"):
            _core.check_f32(bad, "t", 2)

    def test_size_one_dimensions_may_have_any_stride(self):
        _core.check_f32((1234, (1, 5), (99, 1), "torch.float32", "cpu"), "t", 5)


class ServerOptimizers(unittest.TestCase):
    def params(self):
        return [torch.nn.Parameter(torch.zeros(2))]

    def test_sgd_momentum_nesterov_maps_to_momentum(self):
        o = torch.optim.SGD(self.params(), lr=0.1, momentum=0.8, nesterov=True, weight_decay=1e-4)
        s = tessera.torch.server_optimizer(o, o.param_groups[0])
        self.assertEqual((s["kind"], s["momentum"], s["nesterov"]), ("momentum", 0.8, True))
        self.assertAlmostEqual(s["lr"], 0.1)
        self.assertAlmostEqual(s["weight_decay"], 1e-4)

    def test_plain_sgd_maps_to_sgd(self):
        o = torch.optim.SGD(self.params(), lr=0.1)
        self.assertEqual(tessera.torch.server_optimizer(o, o.param_groups[0])["kind"], "sgd")

    def test_adam_adamw_adagrad_keep_their_settings(self):
        o = torch.optim.Adam(self.params(), lr=0.002, betas=(0.8, 0.99), eps=1e-6)
        s = tessera.torch.server_optimizer(o, o.param_groups[0])
        self.assertEqual((s["kind"], s["beta1"], s["beta2"], s["eps"]), ("adam", 0.8, 0.99, 1e-6))
        o = torch.optim.AdamW(self.params(), lr=0.002, weight_decay=0.05)
        s = tessera.torch.server_optimizer(o, o.param_groups[0])
        self.assertEqual(s["kind"], "adamw")
        self.assertAlmostEqual(s["weight_decay"], 0.05)
        o = torch.optim.Adagrad(self.params(), lr=0.05, initial_accumulator_value=0.1)
        s = tessera.torch.server_optimizer(o, o.param_groups[0])
        self.assertEqual(s["kind"], "adagrad")
        self.assertAlmostEqual(s["initial_accumulator"], 0.1)

    def test_unsupported_optimizer_is_refused_with_the_supported_list(self):
        o = torch.optim.RMSprop(self.params(), lr=0.01)
        with self.assertRaisesRegex(TypeError, r"cannot run torch\.optim\.rmsprop\.RMSprop; supported: SGD"):
            tessera.torch.server_optimizer(o, o.param_groups[0])

    def test_settings_the_servers_lack_are_refused(self):
        for o, what in [(torch.optim.SGD(self.params(), lr=0.1, momentum=0.9, dampening=0.5), "dampening=0.5"),
                        (torch.optim.Adam(self.params(), amsgrad=True), "amsgrad=True"),
                        (torch.optim.Adagrad(self.params(), lr_decay=0.1), "lr_decay=0.1")]:
            with self.assertRaisesRegex(ValueError, what):
                tessera.torch.server_optimizer(o, o.param_groups[0])


class Digest(unittest.TestCase):
    def test_is_fnv1a_over_the_float_bytes_in_order(self):
        a = torch.tensor([1.0, -2.5], dtype=torch.float32)
        b = torch.tensor([[3.0]], dtype=torch.float32)
        h = 0xcbf29ce484222325
        for byte in a.numpy().tobytes() + b.numpy().tobytes():
            h = ((h ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
        self.assertEqual(tessera.params_digest([a, b]), "%016x" % h)


if __name__ == "__main__":
    unittest.main()
