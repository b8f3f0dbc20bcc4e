# Shared settings and stages of the bd experiment graphs (included by bitdistiller.mk,
# baselines.mk, demo.mk and bitnet-distill.mk). Every variable can be overridden on the
# command line: make -f pipelines/bitdistiller.mk BITS=3
#   BD_BIN     the bd tools                       (build/bin)
#   BD_DATA    the shared data                    (../shared/data)
#   MODEL      the full-precision teacher         (stories260K)
#   TOKENIZER  its tokenizer                      (tok512.bin)
#   EVAL_TEXT  text to measure perplexity on      (tinystories_val_a.txt)
#   SEQ_LEN    evaluation window                  (512)
#   MC_TASK    multiple-choice task for accuracy  (HellaSwag; empty: none)
#   MC_ITEMS   its first N items                  (500)
#   QUANT      int | nf3 | sym | ternary | r2q | q2_K | q3_K | q4_K  (int)
#   BITS       bits per weight                    (2)
#   GROUP      group size                         (32)
#   OUT        where every file goes              (build/exp)
#   CALIB_TEXT text for the clipping search       (empty: the teacher's own samples)
#   TOKENIZE   the stage that turns EVAL_TEXT (and CALIB_TEXT) into a bd.tokens stream; swap
#              in your own command (it gets the text as $< and writes $@)
#   N_SAMPLES MAX_NEW TEMP SEED  the teacher's samples (1024, 256, 0.7, 1)
#   CLIP_TOKENS  calibration tokens of the clipping search (512)
#   THREADS    threads of every tool (0: all cores; not a setting of the results)
# The training stage's settings (LOSS STEPS LR BATCH TRAIN_LEN EVAL_EVERY QAT_FLAGS QAT) are
# listed in bitdistiller.mk.
#
# Every stage writes one file under OUT, named by its main settings (student_int2_g32_cakld_
# s300_lr2e-4.bdz); every other setting that changes it is in a settings stamp beside it
# (student_....settings), a prerequisite rewritten only when a value changes. So changing any
# setting reruns exactly the stages it changes and those after them, and `make -n` shows that
# plan (a stamp to rewrite shows as a printf line).
BD_BIN    ?= build/bin
BD_DATA   ?= ../shared/data
MODEL     ?= $(BD_DATA)/models/stories260K/stories260K.bin
TOKENIZER ?= $(BD_DATA)/models/stories260K/tok512.bin
EVAL_TEXT ?= $(BD_DATA)/eval/tinystories/tinystories_val_a.txt
SEQ_LEN   ?= 512
MC_TASK   ?= $(BD_DATA)/eval/hellaswag/hellaswag_val_full.txt.bz2
MC_ITEMS  ?= 500
QUANT     ?= int
BITS      ?= 2
GROUP     ?= 32
OUT       ?= build/exp
THREADS   ?= 0
TOKENIZE  ?= $(BD_BIN)/bd-tokenize --tokenizer $(TOKENIZER) --whole -o $@ $<
# Teacher data and clipping calibration.
N_SAMPLES ?= 1024
MAX_NEW   ?= 256
TEMP      ?= 0.7
SEED      ?= 1
CLIP_TOKENS ?= 512
CALIB_TEXT ?=
# Training (bitdistiller.mk documents them).
LOSS       ?= cakld
STEPS      ?= 300
LR         ?= 2e-4
BATCH      ?= 8
TRAIN_LEN  ?= 256
EVAL_EVERY ?= 50
QAT_FLAGS  ?=

T_OPT   = --threads $(THREADS)
stem    = $(patsubst $(OUT)/%.bdz,%,$(1))
# Readable name of a quantization at $(1) bits: int2_g32, sym3_g64, nf3_g32, r2q_g32, ternary
# (per tensor: no group), q2_K (llama.cpp's K-quants: bits and 256-weight blocks implied).
kquant  = $(filter q2_K q3_K q4_K,$(QUANT))
qname   = $(if $(kquant),$(QUANT),$(if $(filter ternary,$(QUANT)),ternary,$(QUANT)$(if $(filter nf3 r2q,$(QUANT)),,$(1))_g$(GROUP)))
# The tools' options for it, and whether it has a clipping search.
qargs   = --quant $(QUANT)$(if $(kquant),, --bits $(1) --group $(GROUP))
clipped = $(filter int nf3 q2_K q3_K q4_K,$(QUANT))
EVALQ   = $(OUT)/eval.bdz
SAMPLES = $(OUT)/samples_n$(N_SAMPLES)_k$(MAX_NEW)_s$(SEED).bdz
CALIB   = $(if $(CALIB_TEXT),$(OUT)/calib.bdz,$(SAMPLES))
clipf   = $(OUT)/clip_$(call qname,$(1))_$(if $(CALIB_TEXT),text,n$(N_SAMPLES)).bdz
# A QAT run's name: quantization, loss, steps, learning rate (bits $(1), loss $(2)).
qtag    = $(call qname,$(1))_$(2)_s$(STEPS)_lr$(LR)
# The same at the current BITS and LOSS (a QAT run's target sets both for its recipe).
QSPEC   = $(call qname,$(BITS))
CLIP    = $(call clipf,$(BITS))
TAG     = $(call qtag,$(BITS),$(LOSS))

.DEFAULT_GOAL := all
.SECONDARY:
.DELETE_ON_ERROR:

# Settings stamps: $(OUT)/NAME.settings holds SET_NAME, and is rewritten only when SET_NAME
# differs from what it holds (compared while make reads the graph, so that make -n plans
# exactly the stages a change reruns, and writes nothing).
streq = $(if $(subst x$(1),,x$(2))$(subst x$(2),,x$(1)),,same)
stamp_same = $(and $(wildcard $(OUT)/$(1).settings),$(call streq,$(file <$(OUT)/$(1).settings),$(SET_$(1))))
.SECONDEXPANSION:
$(OUT)/%.settings: $$(if $$(call stamp_same,$$*),,FORCE)
	@mkdir -p $(@D) && printf '%s\n' '$(subst ','\'',$(SET_$*))' > $@
.PHONY: FORCE
FORCE:

SET_eval = $(EVAL_TEXT) $(TOKENIZER) $(value TOKENIZE)
$(EVALQ): $(EVAL_TEXT) $(OUT)/eval.settings
	$(TOKENIZE)

SET_$(call stem,$(SAMPLES)) = $(MODEL) $(N_SAMPLES) $(MAX_NEW) $(TEMP) $(SEED) top-p 1.0 batch 32
$(SAMPLES): $(MODEL) $(SAMPLES:.bdz=.settings)
	$(BD_BIN)/bd-teacher-gen --model $(MODEL) -n $(N_SAMPLES) --max-new $(MAX_NEW) --temperature $(TEMP) \
	    --top-p 1.0 --seed $(SEED) --batch 32 $(T_OPT) -o $@

SET_calib = $(CALIB_TEXT) $(TOKENIZER) $(value TOKENIZE)
$(OUT)/calib.bdz: $(CALIB_TEXT) $(OUT)/calib.settings
	$(TOKENIZE)

# Evaluations of a run RUN: eval_RUN.bdz, perplexity on EVAL_TEXT, and task_RUN.bdz, accuracy
# on MC_TASK (bd.eval streams; each with a JSON line beside it, .json).
# $(call eval_rules,RUN,MODEL-ARGS,PREREQUISITES)
define eval_rules
SET_eval_$(1) = $(2) -T $(SEQ_LEN)
$(OUT)/eval_$(1).bdz: $(3) $(EVALQ) $(OUT)/eval_$(1).settings
	$(BD_BIN)/bd-eval $(2) -T $(SEQ_LEN) $(T_OPT) --json -o $$@ $(EVALQ) > $(OUT)/eval_$(1).json
EVALS += $(OUT)/eval_$(1).bdz
ifneq ($(MC_TASK),)
SET_task_$(1) = $(2) --task $(MC_TASK) --limit $(MC_ITEMS) $(TOKENIZER)
$(OUT)/task_$(1).bdz: $(3) $(MC_TASK) $(OUT)/task_$(1).settings
	$(BD_BIN)/bd-eval $(2) --tokenizer $(TOKENIZER) --task $(MC_TASK) --limit $(MC_ITEMS) $(T_OPT) --json -o $$@ \
	    > $(OUT)/task_$(1).json
EVALS += $(OUT)/task_$(1).bdz
endif
endef

# The clipping search at $(1) bits.
define clip_rules
SET_$(call stem,$(call clipf,$(1))) = $(MODEL) $(CALIB) $(call qargs,$(1)) --tokens $(CLIP_TOKENS)
$(call clipf,$(1)): $(CALIB) $(MODEL) $(patsubst %.bdz,%.settings,$(call clipf,$(1)))
	$(BD_BIN)/bd-clipsearch --model $(MODEL) --calib $(CALIB) $(call qargs,$(1)) \
	    --tokens $(CLIP_TOKENS) $(T_OPT) -o $$@
endef

# Post-training baselines at $(1) bits: round-to-nearest (and clip+RTN for int and nf3), and
# the RTN model packed (the size of both).
define baseline_rules
$(call eval_rules,rtn_$(call qname,$(1)),--model $(MODEL) $(call qargs,$(1)),$(MODEL))
$(if $(clipped),$(call eval_rules,clip_$(call qname,$(1)),--model $(MODEL) $(call qargs,$(1)) --clip $(call clipf,$(1)),$(MODEL) $(call clipf,$(1))))
SET_packed_rtn_$(call qname,$(1)) = $(MODEL) $(call qargs,$(1))
$(OUT)/packed_rtn_$(call qname,$(1)).bdz: $(MODEL) $(OUT)/packed_rtn_$(call qname,$(1)).settings
	$(BD_BIN)/bd-pack --model $(MODEL) $(call qargs,$(1)) $(T_OPT) -o $$@
BASELINES_$(1) = $(OUT)/eval_rtn_$(call qname,$(1)).bdz $(OUT)/packed_rtn_$(call qname,$(1)).bdz \
	$(if $(clipped),$(OUT)/eval_clip_$(call qname,$(1)).bdz)
endef

# The training stage: $(QAT) with its inputs, as bitdistiller.mk documents it. Recursively
# expanded in the recipe of each run, where BITS, LOSS (so CLIP and TAG) are the run's own.
QAT_INPUTS = $(SAMPLES) $(if $(clipped),$(CLIP)) $(EVALQ)
QAT ?= $(BD_BIN)/bd-qat --model $(MODEL) --data $(SAMPLES) $(call qargs,$(BITS)) \
	$(if $(clipped),--clip $(CLIP)) --loss $(LOSS) -b $(BATCH) -T $(TRAIN_LEN) --steps $(STEPS) --lr $(LR) \
	--schedule constant --eval $(EVALQ) --eval-every $(EVAL_EVERY) --log $(OUT)/log_$(TAG).bdz $(T_OPT) \
	$(QAT_FLAGS) -o $@

# A BitDistiller run at $(1) bits with loss $(2): the student (and its log_TAG.bdz with the
# training and held-out loss), its evaluations and its packed model.
define qat_rules
$(OUT)/student_$(call qtag,$(1),$(2)).bdz: private override BITS = $(1)
$(OUT)/student_$(call qtag,$(1),$(2)).bdz: private override LOSS = $(2)
SET_student_$(call qtag,$(1),$(2)) = $(MODEL) $(SAMPLES) $(if $(clipped),$(call clipf,$(1))) $(EVALQ) $(call qargs,$(1)) \
	--loss $(2) --steps $(STEPS) --lr $(LR) -b $(BATCH) -T $(TRAIN_LEN) \
	--eval-every $(EVAL_EVERY) $(QAT_FLAGS) $$(value QAT)
$(OUT)/student_$(call qtag,$(1),$(2)).bdz: $(SAMPLES) $(if $(clipped),$(call clipf,$(1))) $(EVALQ) $(MODEL) \
	$(OUT)/student_$(call qtag,$(1),$(2)).settings
	$$(QAT)
$(call eval_rules,qat_$(call qtag,$(1),$(2)),--model $(OUT)/student_$(call qtag,$(1),$(2)).bdz,$(OUT)/student_$(call qtag,$(1),$(2)).bdz)
$(OUT)/packed_$(call qtag,$(1),$(2)).bdz: $(OUT)/student_$(call qtag,$(1),$(2)).bdz
	$(BD_BIN)/bd-pack --model $$< $(T_OPT) -o $$@
STUDENTS += $(OUT)/student_$(call qtag,$(1),$(2)).bdz
QAT_$(1)_$(2) = $(OUT)/eval_qat_$(call qtag,$(1),$(2)).bdz $(OUT)/packed_$(call qtag,$(1),$(2)).bdz
endef

# Each set of rules once: $(call fp_run), $(call baselines,BITS...), $(call qat_runs,BITS...,LOSSES...).
once = $(if $(filter $(1),$(DEFINED)),,$(eval DEFINED += $(1))$(eval $(2)))
fp_run = $(call once,fp,$(call eval_rules,fp,--model $(MODEL),$(MODEL)))
clips = $(if $(clipped),$(foreach b,$(1),$(call once,clip$(b),$(call clip_rules,$(b)))))
baselines = $(call clips,$(1))$(foreach b,$(1),$(call once,base$(b),$(call baseline_rules,$(b))))
qat_runs = $(call clips,$(1))$(foreach b,$(1),$(foreach l,$(2),$(call once,qat$(b)_$(l),$(call qat_rules,$(b),$(l)))))

# results.md and results.csv: one row per eval_*.bdz in OUT (each graph adds its evaluations
# as prerequisites: results: $(EVALS)).
.PHONY: results
results:
	sh pipelines/results.sh $(OUT) $(BD_BIN)
