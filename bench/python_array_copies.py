"""What an image array handed to `diffeoflow.register` costs in memory on the way in: a 128^3
array per input layout, measured in a fresh process each. Prints one JSON object.

    PYTHONPATH=build/python /usr/bin/python3 bench/python_array_copies.py [--size 128] [--full]

register reads float32 and float64 arrays of any memory order in place (registration/
image_view.h); other dtypes are converted by NumPy to one float64 array. Measured, in units of one
double image (size^3 x 8 bytes):
- "input": the rise of the process's peak resident memory while register takes the array in,
  isolated by giving a 1-D `moving` (register takes `fixed`, then rejects `moving` before it
  registers), and the peak of NumPy allocations (tracemalloc: a temporary array NumPy makes for a
  conversion shows there). The extra memory the input causes: about 0 for an array read in place,
  1 for a copy in the library's doubles.
- with --full, "registration": the rise of peak memory over a whole short registration of the
  array to a shifted copy of itself (one level, 2 iterations; the registration's own working
  images included). Its difference between layouts is what the input costs.
"""
import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, tracemalloc
import numpy as np
import diffeoflow
n, dtype, order, full = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4] == "1"
x = np.linspace(-1.0, 1.0, n)
def ball(shift):
    # Filled a slice at a time, so that no temporary raises the peak before the baseline.
    out = np.empty((n, n, n), dtype=dtype, order=order)
    r2 = (x[:, None] - shift) ** 2 + x[None, :] ** 2
    for k in range(n):
        out[:, :, k] = 1000.0 * np.exp(-4.0 * (r2 + x[k] ** 2))
    return out
a = ball(0.0)
b = ball(0.05) if full else None
tracemalloc.start()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if full:
    diffeoflow.register(a, b, levels=1, iterations=2, affine="none", threads=1, quiet=True)
else:
    try:
        diffeoflow.register(a, np.zeros(5), quiet=True)
    except ValueError as e:
        assert "moving" in str(e), e
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
_, numpy_peak = tracemalloc.get_traced_memory()
print(json.dumps({"rss_rise_bytes": (after - before) * 1024, "numpy_peak_bytes": numpy_peak}))
"""


def measure(size, dtype, order, full):
    done = subprocess.run([sys.executable, "-c", CHILD, str(size), dtype, order,
                           "1" if full else "0"], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--full", action="store_true",
                        help="also measure a whole short registration per layout (slow)")
    args = parser.parse_args()
    image_bytes = args.size**3 * 8
    out = {"size": args.size, "double_image_mb": image_bytes / 2**20, "cases": {}}
    for dtype, order in (("float32", "C"), ("float32", "F"), ("float64", "C"),
                         ("float64", "F"), ("int16", "C")):
        r = measure(args.size, dtype, order, False)
        case = {
            "input_rss_rise_in_double_images": round(r["rss_rise_bytes"] / image_bytes, 2),
            "numpy_temporary_mb": round(r["numpy_peak_bytes"] / 2**20, 2),
        }
        if args.full:
            f = measure(args.size, dtype, order, True)
            case["registration_rss_rise_in_double_images"] = round(
                f["rss_rise_bytes"] / image_bytes, 2)
        out["cases"][f"{dtype} {order}-order"] = case
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
