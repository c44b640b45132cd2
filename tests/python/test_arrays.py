"""Image arrays go into the library's double images in one pass: float32 and float64 inputs of
any memory order make no NumPy temporary, and every layout gives the same image."""
import tracemalloc

import numpy as np
import pytest

import diffeoflow


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
    reference = diffeoflow.register(fixed, moving, **options).warped
    layouts = [base, np.asfortranarray(base),
               np.flip(np.flip(base, (0, 2)).copy(), (0, 2)),  # negative strides
               np.ascontiguousarray(base.transpose(2, 1, 0)).transpose(2, 1, 0),
               base.astype(">f4")]  # byte-swapped: through NumPy's conversion
    for layout in layouts:
        np.testing.assert_array_equal(diffeoflow.register(layout, moving, **options).warped,
                                      reference)
