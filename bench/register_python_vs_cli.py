"""Time `diffeoflow.register` (Python module) against `diffeoflow register` (CLI) on the same
files, back to back on the same machine, and print one JSON object.

    PYTHONPATH=build/python /usr/bin/python3 bench/register_python_vs_cli.py build/apps/diffeoflow \
        [--size 256] [--repeat 3] [register flags as Python keywords: iterations=50 ...]

The pair is the built-in disc -> C (`diffeoflow shapes`). Each repeat runs the CLI (a process that
reads the PNGs, registers and writes every file) and then Python (read the same PNGs, register,
save() the same files), so both do the same work; the figures are medians.
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

import diffeoflow


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("cli")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("options", nargs="*", help="key=value register options")
    args = parser.parse_args()
    options = dict(o.split("=", 1) for o in args.options)
    cli_flags = [x for k, v in options.items() for x in ("--" + k.replace("_", "-"), v)]

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([args.cli, "shapes", "--out", tmp, "--size", str(args.size), "--quiet"],
                       check=True)
        fixed, moving = os.path.join(tmp, "fixed.png"), os.path.join(tmp, "moving.png")
        cli_seconds, python_seconds, python_register_seconds = [], [], []
        for r in range(args.repeat):
            start = time.perf_counter()
            subprocess.run([args.cli, "register", "--fixed", fixed, "--moving", moving, "--out",
                            os.path.join(tmp, "cli%d" % r), "--quiet"] + cli_flags, check=True)
            cli_seconds.append(time.perf_counter() - start)

            start = time.perf_counter()
            result = diffeoflow.register(fixed, moving, quiet=True, **options)
            python_register_seconds.append(time.perf_counter() - start)
            result.save(os.path.join(tmp, "py%d" % r))
            python_seconds.append(time.perf_counter() - start)
        with open(os.path.join(tmp, "cli0", "metrics.json")) as f:
            cli_metrics = json.load(f)

    cli, py = statistics.median(cli_seconds), statistics.median(python_seconds)
    print(json.dumps({
        "size": args.size, "options": options, "repeat": args.repeat,
        "cli_seconds": cli_seconds, "python_seconds": python_seconds,
        "python_register_only_seconds": python_register_seconds,
        "cli_median_seconds": cli, "python_median_seconds": py,
        "python_over_cli": py / cli,
        "same_ssd_final": result.metrics["ssd_final"] == cli_metrics["ssd_final"],
    }, indent=2))


if __name__ == "__main__":
    main()
