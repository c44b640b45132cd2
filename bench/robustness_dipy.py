#!/usr/bin/python3
"""dipy's SyN on the cases of bench_robustness: the yardstick column of docs/robustness.md.

    build/bench/bench_robustness out=DIR [register=0]     # writes DIR/cases.json, DIR/NAME/*.npy
    nice /usr/bin/python3 bench/robustness_dipy.py DIR [--case NAME[,NAME...]] [--threads N]

For every case in DIR/cases.json it registers DIR/NAME/moving.npy to DIR/NAME/fixed.npy with
dipy's SymmetricDiffeomorphicRegistration as dipy's own examples set it up: SSDMetric with
level_iters [200, 100, 50, 25] and inv_iter 50 for the binary-like shapes (the 2-D circle-to-C
example), CCMetric with level_iters [100, 50, 25] for 2-D anatomy, [10, 10, 5] for 3-D anatomy
(the 2-D and 3-D SyN examples). The images carry their spacing (grid-to-world = diag(spacing)),
read from cases.json.

It prints one JSON object a line per case with the keys bench_robustness prints, measured the same
way: both images min/max normalised to [0, 1] (diffeoflow's normalize_intensity), SSD =
sum over voxels of (warped - fixed)^2 before and after, ssd_reduction = 1 - final/initial;
det D(phi) of the forward map x -> x + u(x) (the map that warps the moving image onto the fixed
grid, the one diffeoflow reports), with central differences inside and one-sided ones at the
borders, in mm; wall_seconds of the optimisation; iterations summed over the levels. Then a
markdown table; with DIR/results.jsonl (bench_robustness out=DIR) also the table of all methods
side by side. The rows are appended to DIR/results_dipy.jsonl, the tables written to
DIR/table_dipy.md and DIR/table_all.md.

dipy is a yardstick, never a dependency of diffeoflow (Debian: apt-get install python3-dipy; this
script runs with the system python, /usr/bin/python3, where that package lives).
"""
import argparse
import json
import os
import sys
import time


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dir", help="the out=DIR of bench_robustness")
    parser.add_argument("--case", default="", help="comma-separated case names (default: all)")
    parser.add_argument("--threads", type=int, default=0,
                        help="OpenMP threads for dipy (default: its own choice)")
    return parser.parse_args()


ARGS = parse_args()
if ARGS.threads > 0:  # before dipy's extension modules start OpenMP
    os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)

import numpy as np  # noqa: E402

try:
    from dipy.align import VerbosityLevels  # noqa: E402
    from dipy.align.imwarp import SymmetricDiffeomorphicRegistration  # noqa: E402
    from dipy.align.metrics import CCMetric, SSDMetric  # noqa: E402
except ImportError as error:
    sys.exit("robustness_dipy.py: dipy is missing (%s); install it with "
             "'apt-get install python3-dipy' and run this script with /usr/bin/python3" % error)


def normalise(image):
    """Min/max to [0, 1]; a constant image becomes 0 (as diffeoflow's NormalizeIntensity)."""
    low, high = float(image.min()), float(image.max())
    if high <= low:
        return np.zeros_like(image, dtype=np.float64)
    return (image.astype(np.float64) - low) / (high - low)


def jacobian_determinant(displacement, spacing):
    """det(I + grad u) for u of shape array_shape + (dim,), component c along array axis c (mm)."""
    dim = displacement.shape[-1]
    jac = np.empty(displacement.shape[:-1] + (dim, dim))
    for c in range(dim):
        for d in range(dim):
            if displacement.shape[d] > 1:
                jac[..., c, d] = np.gradient(displacement[..., c], spacing[d], axis=d,
                                             edge_order=1)
            else:
                jac[..., c, d] = 0.0
            if c == d:
                jac[..., c, d] += 1.0
    return np.linalg.det(jac)


def dipy_setup(kind, dim):
    """dipy's example settings: (metric, level_iters, extra SyN arguments)."""
    if kind == "shape":
        return SSDMetric(dim), [200, 100, 50, 25], {"inv_iter": 50}, "SSD"
    if dim == 2:
        return CCMetric(2), [100, 50, 25], {}, "CC"
    return CCMetric(3), [10, 10, 5], {}, "CC"


def run_case(directory, case):
    name = case["name"]
    # The .npy arrays are (ny, nx) or (nz, ny, nx); cases.json lists spacing along (x, y[, z]).
    fixed = normalise(np.load(os.path.join(directory, name, "fixed.npy")))
    moving = normalise(np.load(os.path.join(directory, name, "moving.npy")))
    dim = fixed.ndim
    spacing = list(reversed(case["spacing_mm"]))  # along the array axes
    grid2world = np.diag(spacing + [1.0])
    metric, level_iters, extra, metric_name = dipy_setup(case["kind"], dim)
    row = {"case": name, "method": "dipy-syn", "dim": dim, "metric": metric_name,
           "level_iters": level_iters, "size": case["size"], "spacing_mm": case["spacing_mm"]}
    try:
        sdr = SymmetricDiffeomorphicRegistration(metric, level_iters, **extra)
        sdr.verbosity = VerbosityLevels.NONE
        start = time.perf_counter()
        mapping = sdr.optimize(fixed, moving, static_grid2world=grid2world,
                               moving_grid2world=grid2world)
        seconds = time.perf_counter() - start
        warped = mapping.transform(moving)
        det = jacobian_determinant(np.asarray(mapping.get_forward_field(), dtype=np.float64),
                                   spacing)
        ssd_initial = float(np.sum((moving - fixed) ** 2))
        ssd_final = float(np.sum((warped - fixed) ** 2))
        folded = int(np.count_nonzero(det <= 0.0))
        row.update({
            "status": "folded" if folded > 0 else "ok",
            "ssd_initial": ssd_initial,
            "ssd_final": ssd_final,
            "ssd_reduction": 1.0 - ssd_final / ssd_initial if ssd_initial > 0 else 0.0,
            "min_jacobian": float(det.min()),
            "max_jacobian": float(det.max()),
            "folded_voxels": folded,
            "wall_seconds": seconds,
            "iterations": len(sdr.full_energy_profile),
            "velocity_norm_spread": None,
        })
    except Exception as error:  # a case that breaks dipy is a row, not the end of the run
        row.update({"status": "error", "error": "%s: %s" % (type(error).__name__, error)})
    return row


def cell(row, key, fmt, scale=1.0):
    value = row.get(key)
    if value is None:
        return "–"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return fmt % (scale * value)


def table(rows):
    lines = ["| case | method | status | SSD reduction | min det Dφ | max det Dφ | folded voxels | "
             "time (s) | iterations | ‖v_t‖ spread |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["case"], r["method"], r["status"], cell(r, "ssd_reduction", "%.1f %%", 100.0),
            cell(r, "min_jacobian", "%.3g"), cell(r, "max_jacobian", "%.3g"),
            cell(r, "folded_voxels", "%g"), cell(r, "wall_seconds", "%.1f"),
            cell(r, "iterations", "%g"), cell(r, "velocity_norm_spread", "%.1f %%", 100.0)))
    return "\n".join(lines) + "\n"


def main():
    directory = ARGS.dir
    manifest = os.path.join(directory, "cases.json")
    if not os.path.exists(manifest):
        sys.exit("robustness_dipy.py: %s: no such file (run bench_robustness out=%s first)"
                 % (manifest, directory))
    with open(manifest) as f:
        cases = json.load(f)
    wanted = [c for c in ARGS.case.split(",") if c]
    names = {c["name"] for c in cases}
    for name in wanted:
        if name not in names:
            sys.exit("robustness_dipy.py: --case %s: not in %s" % (name, manifest))
    rows = []
    with open(os.path.join(directory, "results_dipy.jsonl"), "a") as out:
        for case in cases:
            if wanted and case["name"] not in wanted:
                continue
            row = run_case(directory, case)
            print(json.dumps(row), flush=True)
            out.write(json.dumps(row) + "\n")
            rows.append(row)
    text = table(rows)
    print()
    print(text, end="")
    with open(os.path.join(directory, "table_dipy.md"), "w") as f:
        f.write(text)
    # All methods side by side, in the order of the cases.
    results = os.path.join(directory, "results.jsonl")
    if os.path.exists(results):
        with open(results) as f:
            others = [json.loads(line) for line in f if line.strip()]
        combined = []
        for case in cases:
            combined += [r for r in others if r["case"] == case["name"]]
            combined += [r for r in rows if r["case"] == case["name"]]
        text = table(combined)
        print()
        print(text, end="")
        with open(os.path.join(directory, "table_all.md"), "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
