# Shared settings of the bd experiment graphs (included by bitdistiller.mk and baselines.mk).
# Every variable can be overridden on the command line: make -f pipelines/bitdistiller.mk BITS=3
#   BD_BIN     the bd tools                       (build/bin)
#   BD_DATA    the shared data                    (../shared/data)
#   MODEL      the full-precision teacher         (stories260K)
#   TOKENIZER  its tokenizer                      (tok512.bin)
#   EVAL_TEXT  text to measure perplexity on      (tinystories_val_a.txt)
#   SEQ_LEN    evaluation window                  (512)
#   QUANT      int | nf3 | sym | ternary | r2q    (int)
#   BITS       bits per weight                    (2)
#   GROUP      group size                         (32)
#   OUT        where every file goes              (build/exp)
#   CALIB_TEXT text for the clipping search       (empty: the teacher's own samples)
#   TOKENIZE   the stage that turns EVAL_TEXT (and CALIB_TEXT) into a bd.tokens stream; swap
#              in your own command (it gets the text as $< and writes $@)
BD_BIN    ?= build/bin
BD_DATA   ?= ../shared/data
MODEL     ?= $(BD_DATA)/models/stories260K/stories260K.bin
TOKENIZER ?= $(BD_DATA)/models/stories260K/tok512.bin
EVAL_TEXT ?= $(BD_DATA)/eval/tinystories/tinystories_val_a.txt
SEQ_LEN   ?= 512
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

QSPEC  = $(QUANT)$(BITS)_g$(GROUP)
EVALQ  = $(OUT)/eval.bdz
SAMPLES = $(OUT)/samples_n$(N_SAMPLES)_k$(MAX_NEW)_s$(SEED).bdz
CALIB_TEXT ?=
CALIB   = $(if $(CALIB_TEXT),$(OUT)/calib.bdz,$(SAMPLES))
CLIP    = $(OUT)/clip_$(QSPEC)_$(if $(CALIB_TEXT),text,n$(N_SAMPLES)).bdz
T_OPT   = --threads $(THREADS)

.DEFAULT_GOAL := all
.SECONDARY:
.DELETE_ON_ERROR:

$(EVALQ): $(EVAL_TEXT)
	@mkdir -p $(OUT)
	$(TOKENIZE)

$(SAMPLES): $(MODEL)
	@mkdir -p $(OUT)
	$(BD_BIN)/bd-teacher-gen --model $(MODEL) -n $(N_SAMPLES) --max-new $(MAX_NEW) --temperature $(TEMP) \
	    --top-p 1.0 --seed $(SEED) --batch 32 $(T_OPT) -o $@

$(OUT)/calib.bdz: $(CALIB_TEXT)
	@mkdir -p $(OUT)
	$(TOKENIZE)

$(CLIP): $(CALIB)
	$(BD_BIN)/bd-clipsearch --model $(MODEL) --calib $< --quant $(QUANT) --bits $(BITS) --group $(GROUP) \
	    --tokens $(CLIP_TOKENS) $(T_OPT) -o $@

# An evaluation: perplexity as a bd.eval stream (and a JSON line for people).
# $(call evaluate,MODEL-ARGS,LABEL)
define evaluate
	$(BD_BIN)/bd-eval $(1) -T $(SEQ_LEN) $(T_OPT) --json -o $@ $(EVALQ) > $(@:.bdz=.json)
endef

# results.md and results.csv: one row per eval_*.bdz in OUT.
.PHONY: results
results:
	sh pipelines/results.sh $(OUT) $(BD_BIN)
