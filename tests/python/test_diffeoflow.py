"""Tests of the Python module `diffeoflow` (python/), run by ctest with PYTHONPATH=build/python.

DIFFEOFLOW_CLI names the built `diffeoflow` binary: results of the module are compared with the
files the command line writes for the same inputs.
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np

import diffeoflow

CLI = os.environ.get("DIFFEOFLOW_CLI", "")
# Small and fast: one level, a few iterations, one thread (bit-for-bit comparable runs).
# The deformable stage alone (affine="none": the CLI's --affine none), so that translations are
# the warp's.
OPTIONS = dict(levels=1, iterations=15, threads=1, quiet=True, affine="none")
CLI_OPTIONS = ["--levels", "1", "--iterations", "15", "--threads", "1", "--quiet", "--affine",
               "none"]


def disc(shape, centre, radius):
    """A disc (0/1) on a grid of `shape`, axis 0 = x; exactly representable in float32."""
    x, y = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    return ((x - centre[0]) ** 2 + (y - centre[1]) ** 2 <= radius**2).astype(np.float64)


def pair():
    """A non-square, non-symmetric 2-D pair: the moving disc is shifted by 2 voxels along x."""
    fixed = disc((40, 32), (18, 15), 8)
    fixed[30:34, 4:7] = 1.0  # a mark that breaks every symmetry of the disc
    moving = disc((40, 32), (20, 15), 8)
    moving[32:36, 4:7] = 1.0
    return fixed, moving


def save_npy(path, image):
    """The CLI's .npy convention is a[j, i] = voxel (i, j): the transpose of ours."""
    np.save(path, np.ascontiguousarray(image.T))


def run_cli_on_pair(command, tmp, fixed, moving):
    """`diffeoflow register|compare` on the pair saved as .npy in tmp; returns the two paths and
    the output folder."""
    f, m, out = (os.path.join(tmp, name) for name in ("f.npy", "m.npy", "cli"))
    save_npy(f, fixed)
    save_npy(m, moving)
    subprocess.run([CLI, command, "--fixed", f, "--moving", m, "--out", out] + CLI_OPTIONS,
                   check=True)
    return f, m, out


def without_time(metrics):
    """metrics without the timings (wall_seconds, inverse_seconds, the affine stage's)."""
    out = {k: v for k, v in metrics.items() if k not in ("wall_seconds", "inverse_seconds")}
    if "affine" in out:
        out["affine"] = {k: v for k, v in out["affine"].items() if k != "wall_seconds"}
    return out


class Register(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fixed, cls.moving = pair()
        cls.result = diffeoflow.register(cls.fixed, cls.moving, **OPTIONS)

    def test_reduces_ssd_and_keeps_the_grid(self):
        m = self.result.metrics
        self.assertEqual(m["method"], "shooting")
        self.assertLess(m["ssd_final"], 0.3 * m["ssd_initial"])
        self.assertEqual(self.result.warped.shape, (40, 32))
        self.assertEqual(self.result.jacobian.shape, (40, 32))
        self.assertEqual(self.result.displacement.shape, (40, 32, 2))
        np.testing.assert_allclose(self.result.velocity_norms, m["velocity_norm_per_time"])
        ssd = np.sum((self.result.warped - self.fixed) ** 2)
        self.assertLess(ssd, 0.3 * np.sum((self.moving - self.fixed) ** 2))

    def test_axis_zero_is_x(self):
        # The moving disc sits 2 voxels further along axis 0: phi(x) = x + u(x) reaches it with
        # u_x > 1 (about +2) and u_y ~ 0 inside the disc; shifted along axis 1 instead, the other way round.
        inside = disc((40, 32), (18, 15), 5) > 0
        along_y = np.roll(self.fixed, 2, axis=1)
        for moving, axis in ((self.moving, 0), (along_y, 1)):
            u = diffeoflow.register(self.fixed, moving, **OPTIONS).displacement
            with self.subTest(axis=axis):
                self.assertGreater(u[..., axis][inside].mean(), 1.0)
                self.assertLess(abs(u[..., 1 - axis][inside].mean()), 0.5)
        # spacing is given in axis order too.
        r = diffeoflow.register(self.fixed, self.moving, spacing=(1.5, 1.0), **OPTIONS)
        np.testing.assert_allclose(np.diag(r.affine), [1.5, 1.0, 1.0, 1.0])

    def test_inverse_displacement_undoes_the_map(self):
        # Same grid, unit spacing, no affine stage: q + w(q) = phi^-1(q), and phi there is
        # p + u(p) with u interpolated bilinearly; phi(phi^-1(q)) = q inside the image.
        u, w = self.result.displacement, self.result.inverse_displacement
        self.assertEqual(w.shape, u.shape)
        np.testing.assert_array_equal(self.result.stage_affine, np.eye(4))
        nx, ny = u.shape[:2]
        i, j = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")

        def round_trip_rms(inverse):
            px, py = i + inverse[..., 0], j + inverse[..., 1]
            x0 = np.clip(np.floor(px).astype(int), 0, nx - 2)
            y0 = np.clip(np.floor(py).astype(int), 0, ny - 2)
            fx, fy = (px - x0)[..., None], (py - y0)[..., None]
            u_at_p = ((1 - fx) * (1 - fy) * u[x0, y0] + fx * (1 - fy) * u[x0 + 1, y0]
                      + (1 - fx) * fy * u[x0, y0 + 1] + fx * fy * u[x0 + 1, y0 + 1])
            error = np.hypot(px + u_at_p[..., 0] - i, py + u_at_p[..., 1] - j)[3:-3, 3:-3]
            return np.sqrt(np.mean(error**2))

        self.assertLess(round_trip_rms(w), 0.1)
        # Without the inverse (w = 0) the round trip is the map itself: the check can fail.
        self.assertGreater(round_trip_rms(np.zeros_like(w)), 0.3)

    def test_memory_order_and_dtype_do_not_matter(self):
        f_order = diffeoflow.register(np.asfortranarray(self.fixed),
                                      np.ascontiguousarray(self.moving), **OPTIONS)
        np.testing.assert_array_equal(f_order.warped, self.result.warped)
        np.testing.assert_array_equal(f_order.displacement, self.result.displacement)
        # A transposed view of a C-ordered array (strides reversed) and float32 values.
        view = np.ascontiguousarray(self.fixed.T).T
        as_float32 = diffeoflow.register(view, self.moving.astype(np.float32), **OPTIONS)
        np.testing.assert_array_equal(as_float32.warped, self.result.warped)

    @unittest.skipUnless(CLI, "DIFFEOFLOW_CLI not set")
    def test_equals_the_command_line(self):
        with tempfile.TemporaryDirectory() as tmp:
            f, m, out = run_cli_on_pair("register", tmp, self.fixed, self.moving)
            with open(os.path.join(out, "metrics.json")) as fh:
                cli_metrics = json.load(fh)
            self.assertEqual(without_time(self.result.metrics), without_time(cli_metrics))
            # warped.npy is in the CLI's layout; load_image gives ours.
            np.testing.assert_array_equal(np.load(os.path.join(out, "warped.npy")).T,
                                          self.result.warped)
            warped, _ = diffeoflow.load_image(os.path.join(out, "warped.npy"))
            np.testing.assert_array_equal(warped, self.result.warped)
            jac, affine = diffeoflow.load_image(os.path.join(out, "jacobian.nii.gz"))
            np.testing.assert_allclose(jac, self.result.jacobian, rtol=1e-6)  # float32 file
            np.testing.assert_array_equal(affine, np.eye(4))

            # The same files through save(), and the paths as input.
            saved = os.path.join(tmp, "py")
            from_paths = diffeoflow.register(f, m, **OPTIONS)
            from_paths.save(saved)
            self.assertEqual(sorted(os.listdir(saved)), sorted(os.listdir(out)))
            with open(os.path.join(saved, "metrics.json")) as fh:
                self.assertEqual(without_time(json.load(fh)), without_time(cli_metrics))

            # apply(): the saved map on another image equals result.apply and the CLI's apply.
            label = np.zeros((40, 32))
            label[10:20, 5:25] = 3.0
            save_npy(os.path.join(tmp, "label.npy"), label)
            subprocess.run([CLI, "apply", "--transform", out, "--image",
                            os.path.join(tmp, "label.npy"), "--out",
                            os.path.join(tmp, "applied.npy"), "--interpolation", "nearest",
                            "--quiet"], check=True)
            cli_applied = np.load(os.path.join(tmp, "applied.npy")).T
            np.testing.assert_array_equal(
                diffeoflow.apply(out, label, interpolation="nearest"), cli_applied)
            np.testing.assert_array_equal(
                self.result.apply(label, interpolation="nearest"), cli_applied)
            # interpolation="label" as the CLI's --interpolation label: label values only.
            subprocess.run([CLI, "apply", "--transform", out, "--image",
                            os.path.join(tmp, "label.npy"), "--out",
                            os.path.join(tmp, "applied_label.npy"), "--interpolation", "label",
                            "--quiet"], check=True)
            cli_label = np.load(os.path.join(tmp, "applied_label.npy")).T
            by_label = self.result.apply(label, interpolation="label")
            np.testing.assert_array_equal(by_label, cli_label)
            self.assertEqual(set(np.unique(by_label)), {0.0, 3.0})
            with self.assertRaisesRegex(ValueError, "linear, nearest or label"):
                self.result.apply(label, interpolation="cubic")

    @unittest.skipUnless(CLI, "DIFFEOFLOW_CLI not set")
    def test_compare_equals_the_command_line(self):
        both = diffeoflow.compare(self.fixed, self.moving, **OPTIONS)
        self.assertEqual(both["comparison"]["shooting"],
                         dict(both["shooting"].metrics, status="ok"))
        self.assertEqual(without_time(both["shooting"].metrics),
                         without_time(self.result.metrics))
        self.assertEqual(both["lddmm"].metrics["method"], "lddmm")
        with tempfile.TemporaryDirectory() as tmp:
            _, _, out = run_cli_on_pair("compare", tmp, self.fixed, self.moving)
            with open(os.path.join(out, "comparison.json")) as fh:
                cli = json.load(fh)
            with open(os.path.join(out, "comparison.md")) as fh:
                cli_table = fh.read()
        for method in ("lddmm", "shooting"):
            self.assertEqual(cli[method]["status"], "ok")
            self.assertEqual(without_time(both["comparison"][method]), without_time(cli[method]))
        def no_time_row(table):
            return [line for line in table.splitlines() if not line.startswith("| wall time")]
        self.assertEqual(no_time_row(both["table"]), no_time_row(cli_table))

    def test_three_d(self):
        # A float32 3-D ball moved 2 voxels along axis 0 (x): u_x about +2, u_y and u_z about 0.
        x, y, z = np.meshgrid(np.arange(24), np.arange(20), np.arange(16), indexing="ij")
        fixed = ((x - 11) ** 2 + (y - 10) ** 2 + (z - 8) ** 2 <= 36).astype(np.float32)
        moving = ((x - 13) ** 2 + (y - 10) ** 2 + (z - 8) ** 2 <= 36).astype(np.float32)
        r = diffeoflow.register(fixed, moving, levels=1, iterations=10, threads=1, quiet=True,
                                affine="none")
        self.assertEqual(r.displacement.shape, (24, 20, 16, 3))
        self.assertEqual(r.jacobian.shape, (24, 20, 16))
        self.assertGreater(r.metrics["ssd_reduction"], 0.9)
        u = r.displacement[fixed > 0]
        self.assertGreater(u[:, 0].mean(), 1.0)
        self.assertLess(np.abs(u[:, 1:].mean(axis=0)).max(), 0.5)

    def test_lddmm_method(self):
        r = diffeoflow.register(self.fixed, self.moving, "lddmm", **OPTIONS)
        self.assertEqual(r.metrics["method"], "lddmm")
        self.assertLess(r.metrics["ssd_final"], r.metrics["ssd_initial"])


class Images(unittest.TestCase):
    def test_load_image_axis_convention(self):
        image = np.zeros((7, 5))
        image[5, 1] = 2.0  # voxel (i=5, j=1): not on a symmetry of the grid
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "a.npy")
            save_npy(path, image)  # the file holds a[j, i]
            loaded, affine = diffeoflow.load_image(path)
        self.assertEqual(loaded.shape, (7, 5))
        self.assertEqual(loaded[5, 1], 2.0)
        np.testing.assert_array_equal(loaded, image)
        np.testing.assert_array_equal(affine, np.eye(4))


class BadInput(unittest.TestCase):
    def setUp(self):
        self.fixed, self.moving = pair()

    def test_messages(self):
        cases = [
            (dict(fixed=np.zeros(5)), "expected a 2-D or 3-D array, got 1-D"),
            (dict(alpha=-1), "--alpha"),
            (dict(steps=0), "--steps"),
            (dict(method="gauss"), "--method"),
            (dict(spacing=(1.0,)), "spacing has 1 values, expected 2"),
            (dict(spacing=(1.0, 1.0), affine=np.eye(4)), "give spacing or affine, not both"),
            (dict(affine=np.zeros((4, 4))), "affine column 0 is zero"),
        ]
        for extra, message in cases:
            args = dict(fixed=self.fixed, moving=self.moving, **OPTIONS)
            args.update(extra)
            with self.subTest(extra=list(extra)), self.assertRaises(ValueError) as caught:
                diffeoflow.register(**args)
            self.assertIn(message, str(caught.exception))

    def test_nan_and_missing_files(self):
        bad = self.moving.copy()
        bad[3, 4] = np.nan
        with self.assertRaisesRegex(ValueError, "moving"):
            diffeoflow.register(self.fixed, bad, **OPTIONS)
        with self.assertRaisesRegex(FileNotFoundError, "no_such_image.nii: no such file"):
            diffeoflow.load_image("/nonexistent/no_such_image.nii")
        with self.assertRaisesRegex(ValueError, "image.jpeg: unknown image format"):
            diffeoflow.load_image("image.jpeg")
        with self.assertRaisesRegex(FileNotFoundError, "no_such_model.h5"):
            diffeoflow.load_model("/nonexistent/no_such_model.h5")

    def test_types(self):
        with self.assertRaisesRegex(TypeError, "unexpected keyword argument 'alpah'"):
            diffeoflow.register(self.fixed, self.moving, alpah=3)
        with self.assertRaisesRegex(TypeError, "expected a real-valued array"):
            diffeoflow.register(self.fixed, self.moving.astype(np.complex128))
        with self.assertRaisesRegex(TypeError, "NumPy array or a path"):
            diffeoflow.register(self.fixed, object())


class Interrupt(unittest.TestCase):
    def test_ctrl_c_raises_keyboard_interrupt(self):
        # DIFFEOFLOW_TEST_SIGNAL_AFTER (apps/command.h) raises SIGINT after the 2nd iteration.
        script = ("import numpy as np, diffeoflow\n"
                  "x = np.zeros((40, 32)); x[10:20, 10:20] = 1\n"
                  "try:\n"
                  "    diffeoflow.register(x, np.roll(x, 2, 0), levels=1, iterations=50,"
                  " threads=1, quiet=True, affine='none')\n"
                  "except KeyboardInterrupt:\n"
                  "    print('KeyboardInterrupt')\n")
        self.assertInterrupted(script)
        # train: after the 2nd epoch, and the output folder gets no model.h5.
        self.assertInterrupted("import os, sys, tempfile, diffeoflow\n"
                               "out = os.path.join(tempfile.mkdtemp(), 'run')\n"
                               "try:\n"
                               "    diffeoflow.train('spirals', epochs=50, samples=400, out=out,"
                               " threads=1, quiet=True)\n"
                               "except KeyboardInterrupt:\n"
                               "    print('KeyboardInterrupt' if not os.path.exists("
                               "os.path.join(out, 'model.h5')) else 'model.h5 written')\n")

    def assertInterrupted(self, script):
        env = dict(os.environ, DIFFEOFLOW_TEST_SIGNAL_AFTER="2")
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                              text=True, timeout=120)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout.strip(), "KeyboardInterrupt")


class Model(unittest.TestCase):
    TRAIN = ["--samples", "400", "--epochs", "2", "--threads", "1", "--quiet"]

    @classmethod
    def setUpClass(cls):
        cls.model = diffeoflow.train("spirals", samples=400, epochs=2, threads=1, quiet=True)
        cls.x = np.random.default_rng(3).uniform(-1.5, 1.5, size=(50, 2))

    def test_probabilities(self):
        p = self.model.predict_proba(self.x)
        self.assertEqual(p.shape, (50, self.model.classes))
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
        np.testing.assert_array_equal(self.model.predict(self.x), np.argmax(p, axis=1))
        self.assertEqual(self.model.metrics["epochs"], 2)
        self.assertGreater(self.model.metrics["train_accuracy"], 0.5)
        # Fortran order and float32 give the same probabilities (to float32's precision).
        np.testing.assert_array_equal(self.model.predict_proba(np.asfortranarray(self.x)), p)
        np.testing.assert_allclose(self.model.predict_proba(self.x.astype(np.float32)), p,
                                   atol=1e-6)
        with self.assertRaisesRegex(ValueError, "x"):
            self.model.predict_proba(np.zeros((4, 3)))

    def test_save_and_load_model(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.h5")
            self.model.save(path)
            loaded = diffeoflow.load_model(path)
        np.testing.assert_array_equal(loaded.predict_proba(self.x),
                                      self.model.predict_proba(self.x))

    def test_own_arrays(self):
        rng = np.random.default_rng(5)
        x = rng.normal(size=(300, 3))
        y = (x[:, 0] + 0.5 * x[:, 2] > 0).astype(np.int64)
        with tempfile.TemporaryDirectory() as tmp:
            model = diffeoflow.train((x, y), "odenet", out=os.path.join(tmp, "run"), epochs=20,
                                     threads=1, quiet=True)
            self.assertTrue(os.path.exists(os.path.join(tmp, "run", "metrics.json")))
        self.assertEqual(model.input_shape, [3])
        self.assertGreater(model.metrics["test_accuracy"], 0.9)
        with self.assertRaisesRegex(TypeError, "data: expected"):
            diffeoflow.train([x, y])
        with self.assertRaisesRegex(ValueError, "--epochs"):
            diffeoflow.train("spirals", epochs=0)

    @unittest.skipUnless(CLI, "DIFFEOFLOW_CLI not set")
    def test_equals_the_command_line(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "model")
            subprocess.run([CLI, "train", "--dataset", "spirals", "--out", out] + self.TRAIN,
                           check=True)
            np.save(os.path.join(tmp, "x.npy"), self.x)
            subprocess.run([CLI, "predict", "--model", os.path.join(out, "model.h5"), "--data",
                            os.path.join(tmp, "x.npy"), "--out", os.path.join(tmp, "p.npy"),
                            "--quiet"], check=True)
            cli = diffeoflow.load_model(os.path.join(out, "model.h5"))
            cli_predicted = np.load(os.path.join(tmp, "p.npy"))
        # The same training (same seed, one thread) in this process and in the CLI.
        np.testing.assert_array_equal(cli.predict_proba(self.x), self.model.predict_proba(self.x))
        np.testing.assert_allclose(cli.predict_proba(self.x), cli_predicted, atol=1e-6)  # float32
        self.assertEqual(cli.metrics["test_accuracy"], self.model.metrics["test_accuracy"])


if __name__ == "__main__":
    unittest.main()
