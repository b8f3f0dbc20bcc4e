#!/bin/sh
# The tables of pipelines/bitnet-distill.mk from its acc_*.json (bd-eval --task --json),
# packed_*.bdz and gen_*.txt files: accuracy per seed, their mean and spread (half the range),
# and the binomial standard error of one run (bd-eval's acc_stderr, averaged over the seeds).
# Usage: bitdistill_tables.sh OUT "SEEDS" "T5 runs" "T6 runs" "layer runs" "placement runs"
set -eu
out=$1; seeds=$2; t5=$3; t6=$4; tl=$5; tp=$6

# "acc1 acc2 ..." of run $1 over the seeds, in percent.
accs() {
    for s in $seeds; do
        f=$out/acc_$1_s$s.json
        [ -e "$f" ] || { echo "bitdistill_tables: $f is missing" >&2; exit 1; }
        sed 's/.*"acc":\([0-9.]*\).*/\1/' "$f" | awk '{ printf "%.1f ", 100 * $1 }'
    done
}
stderr_pct() {
    for s in $seeds; do sed 's/.*"acc_stderr":\([0-9.]*\).*/\1/' "$out/acc_$1_s$s.json"; done |
        awk '{ s += $1; n++ } END { printf "%.1f", 100 * s / n }'
}
# | label | per seed | mean +- spread | stderr |
row() {
    a=$(accs "$2")
    echo "$a" | awk -v label="$1" -v se="$(stderr_pct "$2")" '{
        mn = 1e9; mx = -1e9; s = 0
        for (i = 1; i <= NF; i++) { s += $i; if ($i < mn) mn = $i; if ($i > mx) mx = $i }
        printf "| %s | %s | %.1f +- %.1f | %s |\n", label, $0, s / NF, (mx - mn) / 2, se }'
}
mean() { accs "$1" | awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.2f", s / NF }'; }
head_row() { echo "| $1 | accuracy per seed ($seeds) | mean +- half range | one run's std. error |"; echo "|---|---|---|---|"; }
label() {
    case $1 in
    cpt_subln-ldad) echo "BitDistill: SubLN + continual pre-training + LD + AD (last layer)" ;;
    cpt_plain-ldad) echo "without stage 1 (no SubLN): stage 2 + LD + AD" ;;
    subln-ldad) echo "without stage 2: SubLN + LD + AD" ;;
    none-ldad) echo "stage 3 only: LD + AD from the FP model" ;;
    cpt_subln-ce) echo "without stage 3: SubLN + stage 2, then CE only" ;;
    cpt_subln-ld) echo "LD only (logits)" ;;
    cpt_subln-ad) echo "AD only (attention relations)" ;;
    cpt_subln-ldad_L0) echo "AD at layer 0 (first)" ;;
    cpt_subln-ldad_L2) echo "AD at layer 2 (middle)" ;;
    cpt_sublnall-ldad) echo "SubLN before every linear (official code's default), LD + AD" ;;
    *) echo "$1" ;;
    esac
}

echo "## Table 1: SST-2 validation accuracy (872 sentences), stories260K"
echo
echo "| model | accuracy per seed ($seeds) | mean +- half range | one run's std. error | packed file | generation tok/s (batch 1) |"
echo "|---|---|---|---|---|---|"
for r in fp_sft bitnet_sft s3_cpt_subln-ldad; do
    case $r in fp_sft) l="FP-SFT (the teacher, f32)" ;; bitnet_sft) l="BitNet-SFT (ternary W1.58A8, CE only)" ;; *) l="BitDistill (ternary W1.58A8, 3 stages)" ;; esac
    size=$(wc -c <"$out/packed_${r}_s1.bdz" | tr -d ' ')
    gen=$(cat "$out/gen_${r}_s1.txt")
    row "$l" "$r" | sed "s/ |\$/ | $size | $gen |/"
done
echo
echo "BitDistill - FP-SFT: $(awk -v a="$(mean s3_cpt_subln-ldad)" -v b="$(mean fp_sft)" 'BEGIN { printf "%+.2f", a - b }') points;" \
    "BitDistill - BitNet-SFT: $(awk -v a="$(mean s3_cpt_subln-ldad)" -v b="$(mean bitnet_sft)" 'BEGIN { printf "%+.2f", a - b }') points (means)."
echo
echo "## Table 5: stages"
echo
head_row "stages"
for r in $t5; do row "$(label "$r")" "s3_$r"; done
echo
echo "## Table 6: distillation terms (after stages 1 and 2)"
echo
head_row "terms"
for r in $t6; do row "$(label "$r")" "s3_$r"; done
echo
echo "## The attention-relation layer (LD + AD)"
echo
head_row "layer"
for r in $tl; do row "$(label "$r")" "s3_$r"; done
echo
echo "## SubLN placement (stages 1-3, LD + AD)"
echo
head_row "placement"
for r in $tp; do row "$(label "$r")" "s3_$r"; done
