# The demo (`make demo`): BitDistiller on the shared stories260K at 3 and 2 bits with CAKLD,
# against full precision, round-to-nearest and clip+RTN; perplexity on tinystories_val_a.txt,
# HellaSwag accuracy, model size, generation speed of the packed model, and the training loss
# curves as a PNG. Under 15 minutes on 2 cores. Variables: those of pipelines/common.mk, and
#   DEMO_BITS   bit widths              (3 2)       HS_ITEMS   HellaSwag items (500)
#   STEPS       QAT steps per run       (300)       N_SAMPLES  teacher samples (512)
OUT       ?= build/demo
N_SAMPLES ?= 512
STEPS     ?= 300
GROUP     ?= 32
DEMO_BITS ?= 3 2
HS_ITEMS  ?= 500
HELLASWAG ?= $(BD_DATA)/eval/hellaswag/hellaswag_val_full.txt.bz2
include pipelines/common.mk
SUB = OUT=$(OUT) BD_BIN=$(BD_BIN) BD_DATA=$(BD_DATA) N_SAMPLES=$(N_SAMPLES) STEPS=$(STEPS) GROUP=$(GROUP) THREADS=$(THREADS)
QAT_RUN = int$(1)_g$(GROUP)_cakld_s$(STEPS)

.PHONY: all graph
all: $(OUT)/demo.md $(OUT)/loss.png
	@cat $(OUT)/demo.md
	@echo "loss curves: $(OUT)/loss.png"

# The experiment graph itself: baselines and BitDistiller for each bit width.
graph:
	@for b in $(DEMO_BITS); do \
	  $(MAKE) -f pipelines/baselines.mk $(SUB) BITS=$$b all >/dev/null || exit 1; \
	  $(MAKE) -f pipelines/bitdistiller.mk $(SUB) BITS=$$b LOSS=cakld all >/dev/null || exit 1; \
	done

# Packed round-to-nearest models (for size and speed), HellaSwag, generation speed.
$(OUT)/packed_rtn_int%.bdz: graph
	$(BD_BIN)/bd-pack --model $(MODEL) --quant int --bits $* --group $(GROUP) -o $@
$(OUT)/hs_%.json: graph
	$(BD_BIN)/bd-eval $(MODEL_ARGS_$*) --tokenizer $(TOKENIZER) --task $(HELLASWAG) --limit $(HS_ITEMS) --json $(T_OPT) > $@
$(OUT)/gen_%.txt: graph
	$(BD_BIN)/bd-teacher-gen --model $(OUT)/packed_$*.bdz --tokenizer $(TOKENIZER) -n 8 --max-new 200 --batch 1 --unpadded --seed 1 --verbosity 2 \
	    -o - 2>&1 >/dev/null | sed -n 's/.*(\([0-9]*\) tokens\/s.*/\1/p' > $@
$(OUT)/gen_fp.txt: graph
	$(BD_BIN)/bd-teacher-gen --model $(MODEL) -n 8 --max-new 200 --batch 1 --unpadded --seed 1 --verbosity 2 \
	    -o - 2>&1 >/dev/null | sed -n 's/.*(\([0-9]*\) tokens\/s.*/\1/p' > $@

MODEL_ARGS_fp = --model $(MODEL)
$(foreach b,$(DEMO_BITS),$(eval MODEL_ARGS_rtn_int$(b)_g$(GROUP) = --model $(MODEL) --quant int --bits $(b) --group $(GROUP)))
$(foreach b,$(DEMO_BITS),$(eval MODEL_ARGS_clip_int$(b)_g$(GROUP) = --model $(MODEL) --quant int --bits $(b) --group $(GROUP) --clip $(OUT)/clip_int$(b)_g$(GROUP)_n$(N_SAMPLES).bdz))
$(foreach b,$(DEMO_BITS),$(eval MODEL_ARGS_qat_$(call QAT_RUN,$(b)) = --model $(OUT)/student_$(call QAT_RUN,$(b)).bdz))

RUNS = fp $(foreach b,$(DEMO_BITS),rtn_int$(b)_g$(GROUP) clip_int$(b)_g$(GROUP) qat_$(call QAT_RUN,$(b)))
$(OUT)/demo.md: graph $(foreach r,$(RUNS),$(OUT)/hs_$(r).json) $(OUT)/gen_fp.txt \
                $(foreach b,$(DEMO_BITS),$(OUT)/packed_rtn_int$(b).bdz $(OUT)/gen_$(call QAT_RUN,$(b)).txt)
	sh pipelines/demo_table.sh $(OUT) $(MODEL) "$(RUNS)" > $@

$(OUT)/loss.png: graph
	sh pipelines/loss_plot.sh $(OUT) $(BD_BIN) $@
