#!/bin/sh
# `make demo`: draw the built-in disc-to-C pair, register it by gradient descent on v_t (LDDMM)
# and by geodesic shooting, and say where the figure and the trajectories are.
#   sh scripts/demo.sh BUILD_DIR OUT_DIR
set -eu
BUILD=${1:-build}
OUT=${2:-demo-output}
CLI="$BUILD/apps/diffeoflow"
if [ ! -x "$CLI" ]; then
  echo "demo: $CLI not found; build first (make build)" >&2
  exit 1
fi
mkdir -p "$OUT"
"$CLI" shapes --out "$OUT/pair" --quiet
echo "Registering the disc (moving) to the C (fixed), 256 x 256: LDDMM, then geodesic shooting..."
"$CLI" compare --fixed "$OUT/pair/fixed.png" --moving "$OUT/pair/moving.png" --out "$OUT/compare"
echo
echo "Figure:        $OUT/compare/comparison.png   (table: $OUT/compare/comparison.md)"
echo "Per method:    $OUT/compare/lddmm/summary.png, $OUT/compare/shooting/summary.png"
echo "Trajectories:  $OUT/compare/lddmm/trajectory.h5, $OUT/compare/shooting/trajectory.h5"
echo "               (velocity fields, momenta, deformed images at every time point;"
echo "                schema in docs/registration.md)"
