#!/bin/sh
# Plots bd-qat logs (bd.metrics) into a PNG with gnuplot: one panel of training loss per kind
# of loss (a KL to the teacher and a cross-entropy on the data are not on one scale), and one
# of the held-out loss (bd-qat --eval: cross-entropy on held-out text, comparable across
# runs). Each run keeps one colour in every panel; the legends sit outside the plots.
# Usage: loss_plot.sh OUT BD_BIN PNG [LOG...]   (default: every log_*.bdz in OUT). Needs jq.
set -eu
out=$1; bin=$2; png=$3
shift 3
[ $# -gt 0 ] || set -- "$out"/log_*.bdz
colours="#1f77b4 #d62728 #2ca02c #ff7f0e #9467bd #8c564b #e377c2 #17becf #bcbd22 #7f7f7f"
kinds=""; i=0; runs=""
for f in "$@"; do
    [ -e "$f" ] || continue
    base=${f%.bdz}
    "$bin/bd-cat" "$f" >"$base.json"
    kind=$(head -n 1 "$base.json" | jq -r '.loss // "loss"')
    tail -n +2 "$base.json" | jq -r 'select(.step != null) | "\(.step) \(.loss)"' >"$base.train.dat"
    tail -n +2 "$base.json" | jq -r 'select(.eval_loss != null) | "\(.step) \(.eval_loss)"' >"$base.eval.dat"
    rm -f "$base.json"
    i=$((i + 1))
    colour=$(echo "$colours" | cut -d' ' -f$(((i - 1) % 10 + 1)))
    runs="$runs $base|$kind|$colour"
    case " $kinds " in *" $kind "*) ;; *) kinds="$kinds $kind" ;; esac
done
[ -n "$runs" ] || { echo "loss_plot: no bd-qat logs in $out" >&2; exit 1; }
describe() {
    case $1 in
        ce) echo "cross-entropy on the training data (nats/token)" ;;
        fkl) echo "forward KL(teacher || student) (nats/token)" ;;
        rkl) echo "reverse KL(student || teacher) (nats/token)" ;;
        cakld) echo "confidence-aware KL to the teacher (nats/token)" ;;
        jsd) echo "Jensen-Shannon divergence to the teacher (nats/token)" ;;
        *) echo "$1" ;;
    esac
}
held=0
for r in $runs; do [ -s "${r%%|*}.eval.dat" ] && held=1; done
n=$(echo $kinds | wc -w)
panels=$((n + held))
script="set terminal png size 1100,$((330 * panels)) noenhanced; set output '$png';"
script="$script set multiplot layout $panels,1; set key outside right top; set xlabel 'step'; set grid; set xrange [0:*];"
script="$script set lmargin at screen 0.08; set rmargin at screen 0.68;"
for k in $kinds; do
    plots=""
    for r in $runs; do
        base=${r%%|*}; rest=${r#*|}; kind=${rest%%|*}; colour=${rest#*|}
        [ "$kind" = "$k" ] || continue
        plots="$plots${plots:+, }'$base.train.dat' using 1:2 with lines lw 2 lc rgb '$colour' title '$(basename "$base" | sed 's/^log_//')'"
    done
    script="$script set title 'training loss: $(describe "$k")'; set ylabel '$k'; plot $plots;"
done
if [ $held = 1 ]; then
    plots=""
    for r in $runs; do
        base=${r%%|*}; colour=${r##*|}
        [ -s "$base.eval.dat" ] || continue
        plots="$plots${plots:+, }'$base.eval.dat' using 1:2 with linespoints lw 2 pt 7 lc rgb '$colour' title '$(basename "$base" | sed 's/^log_//')'"
    done
    script="$script set title 'held-out loss (bd-qat --eval: cross-entropy on held-out text, nats/token)'; set ylabel 'held-out CE'; plot $plots;"
fi
gnuplot -e "$script unset multiplot"
