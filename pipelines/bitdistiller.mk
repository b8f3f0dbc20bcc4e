# BitDistiller as a Make graph: tokenize -> teacher-gen -> clipsearch -> qat -> eval -> pack.
# Each stage is a file whose name carries its settings, so changing LOSS reruns only the
# training and what follows, changing BITS reruns the clip search too, and so on.
#   make -f pipelines/bitdistiller.mk BITS=3 LOSS=fkl
# Variables (besides those of pipelines/common.mk):
#   LOSS       cakld | fkl | rkl | jsd | ce       (cakld)
#   STEPS      optimizer steps                    (300)
#   LR         learning rate (constant)           (2e-4)
#   BATCH      sequences per step                 (8)
#   TRAIN_LEN  training sequence length           (256)
#   QAT_FLAGS  anything else for bd-qat           ()
#   QAT        the training stage; swap in your own command ($(QAT_INPUTS) are its inputs)
include pipelines/common.mk
LOSS      ?= cakld
STEPS     ?= 300
LR        ?= 2e-4
BATCH     ?= 8
TRAIN_LEN ?= 256
QAT_FLAGS ?=
TAG       = $(QSPEC)_$(LOSS)_s$(STEPS)
STUDENT   = $(OUT)/student_$(TAG).bdz
PACKED    = $(OUT)/packed_$(TAG).bdz
QAT       ?= $(BD_BIN)/bd-qat --model $(MODEL) --data $(SAMPLES) --quant $(QUANT) --bits $(BITS) --group $(GROUP) \
	    $(if $(filter int nf3,$(QUANT)),--clip $(CLIP)) --loss $(LOSS) -b $(BATCH) -T $(TRAIN_LEN) --steps $(STEPS) \
	    --lr $(LR) --schedule constant --log $(OUT)/log_$(TAG).bdz $(T_OPT) $(QAT_FLAGS) -o $@

.PHONY: all
all: $(OUT)/eval_qat_$(TAG).bdz $(PACKED) results
results: $(OUT)/eval_qat_$(TAG).bdz $(PACKED)

$(STUDENT): $(SAMPLES) $(if $(filter int nf3,$(QUANT)),$(CLIP))
	$(QAT)

$(OUT)/eval_qat_$(TAG).bdz: $(STUDENT) $(EVALQ)
	$(call evaluate,--model $(STUDENT))

$(PACKED): $(STUDENT)
	$(BD_BIN)/bd-pack --model $< $(T_OPT) -o $@
