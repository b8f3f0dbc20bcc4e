# Post-training baselines at the same settings as bitdistiller.mk, into the same results:
# full precision, round-to-nearest, and clipping then round-to-nearest. Also the sweep over
# bits x loss of the whole method.
#   make -f pipelines/baselines.mk BITS=3 GROUP=64
#   make -f pipelines/baselines.mk sweep SWEEP_BITS="3 2" SWEEP_LOSSES="ce fkl rkl cakld"
include pipelines/common.mk
SWEEP_BITS   ?= 3 2
SWEEP_LOSSES ?= ce fkl rkl cakld

.PHONY: all sweep
BASELINES = $(OUT)/eval_fp.bdz $(OUT)/eval_rtn_$(QSPEC).bdz $(if $(filter int nf3,$(QUANT)),$(OUT)/eval_clip_$(QSPEC).bdz)
all: $(BASELINES) results
results: $(BASELINES)

$(OUT)/eval_fp.bdz: $(EVALQ)
	$(call evaluate,--model $(MODEL))
$(OUT)/eval_rtn_$(QSPEC).bdz: $(EVALQ)
	$(call evaluate,--model $(MODEL) --quant $(QUANT) --bits $(BITS) --group $(GROUP))
$(OUT)/eval_clip_$(QSPEC).bdz: $(EVALQ) $(CLIP)
	$(call evaluate,--model $(MODEL) --quant $(QUANT) --bits $(BITS) --group $(GROUP) --clip $(CLIP))

# Every (bits, loss) pair: its baselines and its BitDistiller run (make -j2 runs two at once).
sweep:
	@for b in $(SWEEP_BITS); do \
	  $(MAKE) -f pipelines/baselines.mk BITS=$$b all || exit 1; \
	  for l in $(SWEEP_LOSSES); do $(MAKE) -f pipelines/bitdistiller.mk BITS=$$b LOSS=$$l all || exit 1; done; \
	done
	$(MAKE) -f pipelines/baselines.mk results
