# BitDistiller as a Make graph: tokenize -> teacher-gen -> clipsearch -> qat -> eval -> pack.
# Each stage is a file under OUT named by its main settings, with a settings stamp for the
# others (pipelines/common.mk), so changing LOSS or LR reruns only the training and what
# follows, changing BITS reruns the clip search too, and so on.
#   make -f pipelines/bitdistiller.mk BITS=3 LOSS=fkl
# Variables (besides those of pipelines/common.mk):
#   LOSS       cakld | fkl | rkl | jsd | ce       (cakld)
#   STEPS      optimizer steps                    (300)
#   LR         learning rate (constant)           (2e-4)
#   BATCH      sequences per step                 (8)
#   TRAIN_LEN  training sequence length           (256)
#   EVAL_EVERY held-out loss (on EVAL_TEXT) every N steps, in the log (50)
#   QAT_FLAGS  anything else for bd-qat           ()
#   QAT        the training stage; swap in your own command: it reads $(QAT_INPUTS) (the
#              samples, the clip file for int and nf3, the held-out tokens) and writes $@;
#              BITS, LOSS, CLIP and TAG are the run's own
# Outputs: student_TAG.bdz, log_TAG.bdz, eval_qat_TAG.bdz/.json (perplexity),
# task_qat_TAG.bdz/.json (MC_TASK accuracy), packed_TAG.bdz, results.md/.csv, with TAG =
# int2_g32_cakld_s300_lr2e-4 (quantization, loss, steps, learning rate).
include pipelines/common.mk
$(call qat_runs,$(BITS),$(LOSS))

.PHONY: all
all: results
results: $(EVALS) $(QAT_$(BITS)_$(LOSS))
