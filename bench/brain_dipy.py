#!/usr/bin/python3
"""dipy's SyN on the 3-D brain pair of bench_brain: the yardstick of docs/registration.md.

    build/bench/bench_brain size=96 displacement=7.68 out=DIR        # writes the pair and labels
    nice /usr/bin/python3 bench/brain_dipy.py DIR [--metric cc|ssd] [--level-iters 10,10,5]

Registers DIR/moving.nii.gz to DIR/fixed.nii.gz with dipy's SymmetricDiffeomorphicRegistration
(CCMetric(3) and level_iters [10, 10, 5] as in dipy's 3-D SyN example), carries
DIR/moving_labels.nii.gz with the forward map by nearest neighbour, and prints one JSON object:
the mean Dice over the labels of DIR/fixed_labels.nii.gz before and after (as bench_brain counts
it: every label > 0 present in the fixed labels), the SSD reduction on [0, 1]-normalised
intensities, and the wall seconds of the optimisation. dipy and nibabel are yardsticks
(Debian: python3-dipy, python3-nibabel), never dependencies of diffeoflow.
"""
import argparse
import json
import time

import nibabel
import numpy as np
from dipy.align.imwarp import SymmetricDiffeomorphicRegistration
from dipy.align.metrics import CCMetric, SSDMetric


def normalise(image):
    low, high = float(image.min()), float(image.max())
    return (image - low) / (high - low) if high > low else np.zeros_like(image)


def mean_dice(reference, labels):
    values = [v for v in np.unique(reference) if v > 0]
    scores = []
    for v in values:
        a, b = reference == v, labels == v
        total = a.sum() + b.sum()
        scores.append(2.0 * np.logical_and(a, b).sum() / total if total > 0 else 1.0)
    return float(np.mean(scores))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dir")
    parser.add_argument("--metric", default="cc", choices=["cc", "ssd"])
    parser.add_argument("--level-iters", default="10,10,5")
    args = parser.parse_args()
    load = lambda name: nibabel.load("%s/%s.nii.gz" % (args.dir, name))
    fixed, moving = load("fixed"), load("moving")
    fixed_labels = np.asarray(load("fixed_labels").dataobj)
    moving_labels = np.asarray(load("moving_labels").dataobj)
    static = np.asarray(fixed.dataobj, dtype=np.float64)
    mov = np.asarray(moving.dataobj, dtype=np.float64)
    metric = CCMetric(3) if args.metric == "cc" else SSDMetric(3)
    level_iters = [int(v) for v in args.level_iters.split(",")]
    sdr = SymmetricDiffeomorphicRegistration(metric, level_iters)
    start = time.time()
    mapping = sdr.optimize(static, mov, fixed.affine, moving.affine)
    seconds = time.time() - start
    warped = mapping.transform(mov)
    warped_labels = mapping.transform(moving_labels.astype(np.float64), interpolation="nearest")
    f, m, w = normalise(static), normalise(mov), normalise(warped)
    print(json.dumps({
        "tool": "dipy SyN", "metric": args.metric, "level_iters": level_iters,
        "dice_before": mean_dice(fixed_labels, moving_labels),
        "dice_after": mean_dice(fixed_labels, np.rint(warped_labels)),
        "ssd_reduction": 1.0 - float(((w - f) ** 2).sum()) / float(((m - f) ** 2).sum()),
        "wall_seconds": seconds}))


if __name__ == "__main__":
    main()
