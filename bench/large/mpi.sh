# make bench-large: data parallelism on one machine. A random Llama-110M-shaped model (dim 768,
# 12 layers, 12 heads, 12 KV heads, ffn 2048, vocab 32000, untied: P = 134.1M parameters; bf16
# safetensors, 268 MB, made once under $LARGE) trained by bd-qat as 1 process x 2 threads at
# batch 2B against mpirun -np 2 x 1 thread at batch B (the same sequences per step): 2-bit QAT
# with fkl against the live teacher, and plain ce training. tokens/s counts steps 2..STEPS (the
# first step pays for page faults and allocation), median of REPS runs taken in turn. Then the
# bytes a rank sends per step (computed from P and bd_dist.c's algorithm, against bd-qat's own
# count) and MPI_Allreduce bandwidth over shared memory and TCP loopback (allreduce_bw.c, built
# here with mpicc). 10 minutes on 2 quiet cores, 35 on busy ones. Skipped without mpirun or MPI in bd.
. "$(dirname "$0")/common.inc"
if ! command -v mpirun >/dev/null 2>&1 || ! command -v mpicc >/dev/null 2>&1; then
    echo "skip: no mpirun/mpicc (Debian: openmpi-bin, libopenmpi-dev; make deps)"
    exit 0
fi
"$BIN/bd-qat" --version | grep -q "MPI=1" || { echo "skip: bd-qat was built without MPI"; exit 0; }
MPIRUN="mpirun --oversubscribe --bind-to none"  # unbound, as the one process is
[ "$(id -u)" != 0 ] || MPIRUN="$MPIRUN --allow-run-as-root"
REPS=${REPS:-3}
STEPS=${STEPS:-4}
B=1
T=128
C=768 F=2048 L=12 NH=12 KV=12 V=32000
M=$LARGE/llama110m
if [ ! -s "$M/model.safetensors" ]; then
    echo "making $M (268 MB, once) ..."
    $PY "$MAKE_MODEL" "$M" $C $F $L $NH $KV $V bf16 3 2048
fi
head -c 12000 "$TXT" >"$W/train.txt"
"$BIN/bd-tokenize" -q -k "$TOK" -o "$W/train.bdz" "$W/train.txt"
common="-m $M -T $T --steps $STEPS --lr 1e-5 --seed 1"
qat="--quant int --bits 2 --group 128 --loss fkl"

# one NAME OPTIONS / two NAME OPTIONS: 1 process x 2 threads at batch 2B / 2 ranks x 1 thread at B.
one() {
    name=$1
    shift
    run "$name" "$BIN/bd-qat" $common -t 2 -b $((2 * B)) "$@" --log "$W/$name.log" -o "$W/$name.bdz" "$W/train.bdz"
}
two() {
    name=$1
    shift
    run "$name" $MPIRUN -np 2 "$BIN/bd-qat" $common -t 1 -b $B "$@" --log "$W/$name.log" -o "$W/$name.bdz" \
        "$W/train.bdz"
}
r=1
while [ $r -le "$REPS" ]; do  # in turn, so that a change in the machine's load hits every setting
    echo "run $r/$REPS ..."
    one q1_$r $qat
    two q2_$r $qat
    one c1_$r --loss ce
    two c2_$r --loss ce
    r=$((r + 1))
done

# tps NAME: tokens/s of steps 2..STEPS from the log's cumulative tokens and seconds.
tps() {
    "$BIN/bd-cat" "$W/$1.log" | sed -n 's/^{"step":\([0-9]*\),.*"tokens":\([0-9]*\),.*"seconds":\([0-9.e+-]*\)}$/\1 \2 \3/p' |
        awk '$1 == 1 { t1 = $2; s1 = $3 } { t = $2; s = $3 } END { printf "%.1f", (t - t1) / (s - s1) }'
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { printf "%.1f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
runs() { r=1; while [ $r -le "$REPS" ]; do printf '%s ' "$(tps "$1_$r")"; r=$((r + 1)); done; }
# comm NAME: seconds in collectives per step and MB sent by rank 0 per step (bd-qat's note).
comm() { sed -n 's/^bd-qat: 2 ranks: \([0-9.]*\) s in collectives, rank 0 sent \([0-9.]*\) MB per step.*/\1 \2/p' "$W/$1.err"; }
comm_s() { r=1; while [ $r -le "$REPS" ]; do comm "$1_$r" | awk -v n="$STEPS" '{ printf "%.2f ", $1 / n }'; r=$((r + 1)); done; }

# The bytes rank 0 sends per step (bd_dist.c): the bucketed all-reduce of the P-float gradient
# (a ring's share, 2(R-1)/R x 4P), its shard of the weights to the other ranks (4P/R, one
# MPI_Bcast per shard), and 24 bytes of sums (count, loss, squared norm). The count is bd_dist's
# model of the traffic, not a reading of the wire.
P=$(awk -v C=$C -v F=$F -v L=$L -v NH=$NH -v KV=$KV -v V=$V \
    'BEGIN { hs = C / NH; printf "%.0f", 2 * V * C + C + L * (2 * C * C + 2 * C * KV * hs + 3 * C * F + 2 * C) }')
AR_MB=$(awk -v P="$P" 'BEGIN { printf "%.2f", 2 * 1 / 2 * 4 * P / 1e6 }')
AG_MB=$(awk -v P="$P" 'BEGIN { printf "%.2f", 4 * int(P / 2) / 1e6 }')
SUM_MB=$(awk -v a="$AR_MB" -v b="$AG_MB" 'BEGIN { printf "%.2f", a + b }')
REPORTED_MB=$(comm q2_1 | awk '{ print $2 }')

# MPI_Allreduce bandwidth over shared memory (Open MPI's default between 2 local ranks) and TCP
# loopback, with Open MPI's choice of algorithm and with the ring (tuned algorithm 4) the
# projections assume; 16.8 MB is bd_dist's bucket (16 MiB of f32).
mpicc -O2 -std=c11 -Wall -Wextra -o "$W/allreduce_bw" "$(dirname "$0")/allreduce_bw.c"
ring="--mca coll_tuned_use_dynamic_rules 1 --mca coll_tuned_allreduce_algorithm 4"
sizes="4 16.777216 64 256"
run ar_shm $MPIRUN -np 2 "$W/allreduce_bw" 5 $sizes
run ar_shm_ring $MPIRUN $ring -np 2 "$W/allreduce_bw" 5 $sizes
run ar_tcp $MPIRUN --mca btl self,tcp -np 2 "$W/allreduce_bw" 5 $sizes
run ar_tcp_ring $MPIRUN --mca btl self,tcp $ring -np 2 "$W/allreduce_bw" 5 $sizes

echo
echo "Llama-110M-shaped (P = $P), T=$T, $STEPS steps (tokens/s of steps 2..$STEPS), median of $REPS runs"
fmt='%-50s %9s  %-18s %6s  %s\n'
printf "$fmt" "setting" "tokens/s" "runs" "ratio" "collectives s/step (runs)"
row() {
    a=$(runs "$2" | median)
    b=$(runs "$3" | median)
    printf "$fmt" "$1, 1 process x 2 threads, B=$((2 * B))" "$a" "$(runs "$2")" "" ""
    printf "$fmt" "$1, 2 ranks x 1 thread, B=$B" "$b" "$(runs "$3")" \
        "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b / a }')" "$(comm_s "$3")"
}
row "2-bit QAT, fkl, live teacher" q1 q2
row "ce, no quantization" c1 c2
echo
echo "bytes sent by rank 0 per step (R=2): all-reduce 2(R-1)/R x 4P = $AR_MB MB + weight shard 4P/R = $AG_MB MB"
echo "  = $SUM_MB MB computed; bd-qat reports $REPORTED_MB MB"
echo
echo "MPI_Allreduce of f32, 2 ranks, median of 5: bus bandwidth 2(R-1)/R x bytes / s, GB/s"
printf '%8s %14s %14s %14s %14s\n' "MB" "shm default" "shm ring" "tcp lo default" "tcp lo ring"
awk 'FNR == 1 { f++ } FNR > 1 { mb[FNR] = $1; bw[f, FNR] = $4; n = FNR } END {
    for (i = 2; i <= n; i++) printf "%8s %14s %14s %14s %14s\n", mb[i], bw[1, i], bw[2, i], bw[3, i], bw[4, i] }' \
    "$W/ar_shm.out" "$W/ar_shm_ring.out" "$W/ar_tcp.out" "$W/ar_tcp_ring.out"
echo "(ratio: 2 ranks / 1 process; collectives: bd-qat's seconds in MPI calls over all $STEPS steps / $STEPS,"
echo " waiting for the slower rank included; bd_dist uses 16 MiB buckets)"
echo "(machine load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores)"
