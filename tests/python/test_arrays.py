"""Image arrays go into the library without a copy: register reads float32 and float64 inputs of
any memory order in place (no NumPy temporary, no double image), and every layout gives the same
result, the command line's on the same values."""
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import tracemalloc

import numpy as np
import pytest

import diffeoflow
from test_diffeoflow import without_time

CLI = os.environ.get("DIFFEOFLOW_CLI", "")
BENCH = pathlib.Path(__file__).resolve().parents[2] / "bench" / "python_array_copies.py"


def numpy_peak_while_reading(array):
    """Peak NumPy allocation (bytes) while register reads `array` as the fixed image (a 1-D
    moving image stops it right after)."""
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="moving: expected a 2-D or 3-D array"):
            diffeoflow.register(array, np.zeros(5), quiet=True)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", ["C", "F"])
def test_float_arrays_are_read_in_place(dtype, order):
    a = np.ones((48, 40, 32), dtype=dtype, order=order)
    assert numpy_peak_while_reading(a) < a.size  # well below one float64 copy (8 bytes a voxel)


def test_other_dtypes_are_converted_by_numpy():
    # The check can fail: an int16 array goes through a NumPy float64 temporary.
    a = np.ones((48, 40, 32), dtype=np.int16)
    assert numpy_peak_while_reading(a) >= 8 * a.size


def test_every_layout_reads_the_same_image():
    rng = np.random.default_rng(2)
    base = rng.uniform(size=(12, 10, 6)).astype(np.float32)
    fixed = base.astype(np.float64)
    moving = np.roll(fixed, 1, axis=0)
    options = dict(levels=1, iterations=2, threads=1, quiet=True, affine="none")
    result = diffeoflow.register(fixed, moving, **options)
    reference = result.warped
    applied = result.apply(fixed)
    layouts = [base, np.asfortranarray(base),
               np.flip(np.flip(base, (0, 2)).copy(), (0, 2)),  # negative strides
               np.ascontiguousarray(base.transpose(2, 1, 0)).transpose(2, 1, 0),
               base.astype(">f4")]  # byte-swapped: through NumPy's conversion
    for layout in layouts:
        np.testing.assert_array_equal(diffeoflow.register(layout, moving, **options).warped,
                                      reference)
        # apply() reads the image through the same views.
        np.testing.assert_array_equal(result.apply(layout), applied)


def test_a_float32_c_ordered_input_is_not_copied():
    # bench/python_array_copies.py: the rise of peak resident memory while register takes a 128^3
    # array in, in double images (16 MiB), each layout in a fresh process.
    done = subprocess.run([sys.executable, str(BENCH), "--size", "128"], capture_output=True,
                          text=True, check=True)
    cases = json.loads(done.stdout)["cases"]
    rise = {name: case["input_rss_rise_in_double_images"] for name, case in cases.items()}
    for name in ("float32 C-order", "float32 F-order", "float64 C-order", "float64 F-order"):
        assert rise[name] < 0.25, rise  # a copy into the library's doubles would be 1
    # The measurement sees a copy: an int16 array is converted to one float64 array.
    assert rise["int16 C-order"] > 0.75, rise


@pytest.mark.skipif(not CLI, reason="DIFFEOFLOW_CLI not set")
def test_float32_c_order_float64_fortran_order_and_the_cli_agree():
    x, y, z = np.meshgrid(np.arange(24), np.arange(20), np.arange(16), indexing="ij")
    ball = lambda cx: np.exp(-((x - cx) ** 2 + (y - 10) ** 2 + (z - 8) ** 2) / 18.0)
    fixed = ball(11.0).astype(np.float32)   # C order: z fastest
    moving = ball(13.0).astype(np.float32)
    options = dict(levels=1, iterations=8, threads=1, quiet=True, affine="none")
    c_order = diffeoflow.register(fixed, moving, **options)
    fortran = diffeoflow.register(np.asfortranarray(fixed, dtype=np.float64),
                                  np.asfortranarray(moving, dtype=np.float64), **options)
    with tempfile.TemporaryDirectory() as tmp:
        paths = [os.path.join(tmp, name) for name in ("f.npy", "m.npy")]
        for path, image in zip(paths, (fixed, moving)):
            np.save(path, np.ascontiguousarray(image.T))  # the CLI's .npy: (nz, ny, nx)
        out = os.path.join(tmp, "cli")
        subprocess.run([CLI, "register", "--fixed", paths[0], "--moving", paths[1], "--out", out,
                        "--levels", "1", "--iterations", "8", "--threads", "1", "--quiet",
                        "--affine", "none"], check=True)
        with open(os.path.join(out, "metrics.json")) as fh:
            cli = json.load(fh)
    assert without_time(c_order.metrics) == without_time(cli)
    assert without_time(fortran.metrics) == without_time(cli)
    np.testing.assert_array_equal(c_order.warped, fortran.warped)
    np.testing.assert_array_equal(c_order.displacement, fortran.displacement)
