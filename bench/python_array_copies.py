"""How many copies of an image array the module makes on the way in: a 128^3 array handed to
`diffeoflow.register`, measured per input layout in a fresh process. Prints one JSON object.

    PYTHONPATH=build/python /usr/bin/python3 bench/python_array_copies.py [--size 128]

The library's images are owned double vectors in x-fastest order (registration/image.h), so one
pass that writes them is the least any input needs (a float32 input needs it to widen anyway).
Measured: the rise of the process's peak resident memory during the conversion, in units of one
double image (size^3 x 8 bytes), and the peak of NumPy allocations (tracemalloc: a temporary
array NumPy makes for a conversion shows there). The conversion alone is isolated by giving a
1-D `moving`: register reads `fixed` into an image, then rejects `moving` before registering.
"""
import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, tracemalloc
import numpy as np
import diffeoflow
n, dtype, order = int(sys.argv[1]), sys.argv[2], sys.argv[3]
a = np.ones((n, n, n), dtype=dtype, order=order)   # allocated and touched before the baseline
tracemalloc.start()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    diffeoflow.register(a, np.zeros(5), quiet=True)
except ValueError as e:
    assert "moving" in str(e), e
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
_, numpy_peak = tracemalloc.get_traced_memory()
print(json.dumps({"rss_rise_bytes": (after - before) * 1024, "numpy_peak_bytes": numpy_peak}))
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    image_bytes = args.size**3 * 8
    out = {"size": args.size, "double_image_mb": image_bytes / 2**20, "cases": {}}
    for dtype, order in (("float32", "C"), ("float32", "F"), ("float64", "C"),
                         ("float64", "F"), ("int16", "C")):
        done = subprocess.run([sys.executable, "-c", CHILD, str(args.size), dtype, order],
                              capture_output=True, text=True, check=True)
        r = json.loads(done.stdout)
        out["cases"][f"{dtype} {order}-order"] = {
            "rss_rise_in_double_images": round(r["rss_rise_bytes"] / image_bytes, 2),
            "numpy_temporary_mb": round(r["numpy_peak_bytes"] / 2**20, 2),
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
