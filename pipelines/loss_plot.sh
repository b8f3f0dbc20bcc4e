#!/bin/sh
# Plots the training loss of every log_*.bdz (bd.metrics) in OUT into a PNG with gnuplot.
# Usage: loss_plot.sh OUT BD_BIN PNG
set -eu
out=$1; bin=$2; png=$3
plots=""
for f in "$out"/log_*.bdz; do
    [ -e "$f" ] || continue
    dat=${f%.bdz}.dat
    "$bin/bd-cat" "$f" | grep '"step"' | sed 's/.*"step":\([0-9]*\),"loss":\([0-9.eE+-]*\).*/\1 \2/' >"$dat"
    name=$(basename "$f" .bdz | sed 's/^log_//')
    plots="$plots${plots:+, }'$dat' using 1:2 with lines title '$name'"
done
[ -n "$plots" ] || { echo "loss_plot: no log_*.bdz in $out" >&2; exit 1; }
gnuplot -e "set terminal png size 900,500 noenhanced; set output '$png'; set title 'bd-qat training loss (distillation loss to the teacher)'; set xlabel 'step'; set ylabel 'training loss'; set logscale y; set key top right; plot $plots"
