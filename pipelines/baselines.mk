# Post-training baselines at the same settings as bitdistiller.mk, into the same results:
# full precision, round-to-nearest, and clipping then round-to-nearest (int and nf3), with
# the RTN model packed for its size. Also the sweep over bits x loss of the whole method.
#   make -f pipelines/baselines.mk BITS=3 GROUP=64
#   make -f pipelines/baselines.mk sweep SWEEP_BITS="3 2" SWEEP_LOSSES="ce fkl rkl cakld"
# (one graph: make -j2 runs two stages at once).
include pipelines/common.mk
SWEEP_BITS   ?= 3 2
SWEEP_LOSSES ?= ce fkl rkl cakld

.PHONY: all sweep
ifeq ($(filter sweep,$(MAKECMDGOALS)),)
$(call fp_run)
$(call baselines,$(BITS))
all: results
results: $(EVALS) $(BASELINES_$(BITS))
else
$(call fp_run)
$(call baselines,$(SWEEP_BITS))
$(call qat_runs,$(SWEEP_BITS),$(SWEEP_LOSSES))
sweep: results
results: $(EVALS) $(foreach b,$(SWEEP_BITS),$(BASELINES_$(b)) $(foreach l,$(SWEEP_LOSSES),$(QAT_$(b)_$(l))))
endif
