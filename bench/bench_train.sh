# Training step: bd (bench_train) against PyTorch eager on the CPU (bench_train_torch.py),
# same 110M-shaped model, T=512, same thread count, in this run. Each B runs in a fresh
# process for both, so the peak resident memory is that of one configuration.
# Env: BD_THREADS (default: all CPUs), BD_BENCH_STEPS (default 3), BD_BENCH_B (default "1 2 4").
dir=$(dirname "$0")
bin=${BD_BENCH_BIN:-$dir/../build/bench/bench_train}
threads=${BD_THREADS:-$(nproc)}
steps=${BD_BENCH_STEPS:-3}
export BD_THREADS=$threads BD_BENCH_STEPS=$steps
[ -x "$bin" ] || { echo "bench_train.sh: $bin not built (make bench)" >&2; exit 1; }
# The first Python that imports torch (Debian's python3-torch lives under /usr/bin/python3,
# which a pyenv or venv python3 earlier in PATH does not see).
torch=0
for py in python3 /usr/bin/python3; do
    if "$py" -c 'import torch' 2>/dev/null; then torch=1; break; fi
done
[ $torch = 1 ] || echo "bench_train.sh: no python3 can import torch: comparison skipped (apt-get install python3-torch)"
echo "training step, 110M-shaped Llama, T 512, $threads threads, $steps steps after a warm-up"
printf '%2s %10s %7s %9s | %12s %9s | %7s\n' B "bd tok/s" "bd MFU" "bd MB" "torch tok/s" "torch MB" "bd/torch"
for B in ${BD_BENCH_B:-1 2 4}; do
    set -- $("$bin" "$B") || exit 1
    bd_tps=$3 bd_mb=$4 mfu=$6
    if [ $torch = 1 ]; then
        set -- $("$py" "$dir/bench_train_torch.py" "$B" "$threads" "$steps") || exit 1
        t_tps=$3 t_mb=$4
        awk -v B="$B" -v a="$bd_tps" -v m="$mfu" -v am="$bd_mb" -v t="$t_tps" -v tm="$t_mb" \
            'BEGIN { printf "%2d %10.0f %6.1f%% %9.0f | %12.0f %9.0f | %6.2fx\n", B, a, 100*m, am, t, tm, a/t }'
    else
        awk -v B="$B" -v a="$bd_tps" -v m="$mfu" -v am="$bd_mb" \
            'BEGIN { printf "%2d %10.0f %6.1f%% %9.0f | %12s %9s | %7s\n", B, a, 100*m, am, "-", "-", "-" }'
    fi
done
