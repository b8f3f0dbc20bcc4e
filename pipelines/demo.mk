# The demo (`make demo`): BitDistiller on the shared stories260K at 3 and 2 bits with CAKLD,
# against full precision, round-to-nearest and clip+RTN; perplexity on tinystories_val_a.txt,
# HellaSwag accuracy, model size, generation speed of the packed models, and the training and
# held-out loss curves as a PNG. One Make graph (pipelines/common.mk): run again with nothing
# changed, it does nothing; `make -n -f pipelines/demo.mk` shows what a change reruns. Under
# 15 minutes on 2 cores. Variables: those of pipelines/common.mk and bitdistiller.mk, and
#   DEMO_BITS   bit widths              (3 2)       HS_ITEMS   HellaSwag items (500)
#   STEPS       QAT steps per run       (300)       N_SAMPLES  teacher samples (512)
OUT       ?= build/demo
N_SAMPLES ?= 512
STEPS     ?= 300
GROUP     ?= 32
DEMO_BITS ?= 3 2
HS_ITEMS  ?= 500
HELLASWAG ?= $(BD_DATA)/eval/hellaswag/hellaswag_val_full.txt.bz2
MC_TASK   ?= $(HELLASWAG)
MC_ITEMS  ?= $(HS_ITEMS)
include pipelines/common.mk
$(call fp_run)
$(call baselines,$(DEMO_BITS))
$(call qat_runs,$(DEMO_BITS),cakld)

.PHONY: all
all: $(OUT)/demo.md $(OUT)/loss.png
	@cat $(OUT)/demo.md
	@echo "loss curves: $(OUT)/loss.png"

# Generation speed at batch 1 of the FP model and of each packed student: 64 samples of up to 200
# tokens (a second or more, not a tenth), the median of three runs.
GEN = -n 64 --max-new 200 --batch 1 --unpadded --seed 1 --verbosity 2 $(T_OPT)
GEN_SPEED = sed -n 's/.*(\([0-9]*\) tokens\/s.*/\1/p'
# $(call gen_median,MODEL OPTIONS): the median tokens/s of three runs.
gen_median = for r in 1 2 3; do $(BD_BIN)/bd-teacher-gen $(1) $(GEN) -o - 2>&1 >/dev/null | $(GEN_SPEED); done | \
    sort -n | sed -n 2p
$(OUT)/gen_fp.txt: $(MODEL)
	$(call gen_median,--model $(MODEL)) > $@
$(OUT)/gen_%.txt: $(OUT)/packed_%.bdz
	$(call gen_median,--model $< --tokenizer $(TOKENIZER)) > $@

RUNS = fp $(foreach b,$(DEMO_BITS),rtn_$(call qname,$(b)) clip_$(call qname,$(b)) qat_$(call qtag,$(b),cakld))
$(OUT)/demo.md: $(EVALS) $(OUT)/gen_fp.txt $(foreach b,$(DEMO_BITS),$(BASELINES_$(b)) $(QAT_$(b)_cakld) \
                $(OUT)/gen_$(call qtag,$(b),cakld).txt) pipelines/demo_table.sh
	sh pipelines/demo_table.sh $(OUT) $(MODEL) "$(RUNS)" > $@

$(OUT)/loss.png: $(STUDENTS) pipelines/loss_plot.sh
	sh pipelines/loss_plot.sh $(OUT) $(BD_BIN) $@ $(patsubst $(OUT)/student_%.bdz,$(OUT)/log_%.bdz,$(STUDENTS))
