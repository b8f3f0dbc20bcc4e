# The demo: what bd does today on the shared real model (stories260K), as a Make graph.
# Run through `make demo` (which passes BD_BIN and BD_DATA). Variables:
#   BD_BIN   directory of the bd tools          BD_DATA  the shared data (../shared/data)
#   OUT      where results go (build/demo)      BITS     bit widths to try ("3 2")
#   GROUP    group size (32)
BD_BIN  ?= build/bin
BD_DATA ?= ../shared/data
OUT     ?= build/demo
BITS    ?= 3 2
GROUP   ?= 32
MODEL    = $(BD_DATA)/models/stories260K/stories260K.bin
TOK      = $(BD_DATA)/models/stories260K/tok512.bin
TEXT     = $(BD_DATA)/eval/tinystories/tinystories_val_a.txt

.PHONY: all
.SECONDARY:
all: $(OUT)/results.md
	@cat $(OUT)/results.md

$(OUT)/val.bdz: $(TEXT)
	@mkdir -p $(OUT)
	$(BD_BIN)/bd-tokenize --tokenizer $(TOK) --whole -o $@ $<

# Calibration text: the model's own greedy story (no overlap with the evaluation text).
$(OUT)/calib.txt: $(MODEL)
	@mkdir -p $(OUT)
	$(BD_BIN)/bd-eval --model $(MODEL) --generate 500 > $@
$(OUT)/calib.bdz: $(OUT)/calib.txt
	$(BD_BIN)/bd-tokenize --tokenizer $(TOK) --whole -o $@ $<

$(OUT)/fp.json: $(OUT)/val.bdz
	$(BD_BIN)/bd-eval --model $(MODEL) -T 512 --json $< > $@
$(OUT)/rtn%.json: $(OUT)/val.bdz
	$(BD_BIN)/bd-eval --model $(MODEL) -T 512 --quant int --bits $* --group $(GROUP) --json $< > $@
$(OUT)/clip%.bdz: $(OUT)/calib.bdz
	$(BD_BIN)/bd-clipsearch --model $(MODEL) --calib $< -T 256 --windows 2 --bits $* --group $(GROUP) -o $@
$(OUT)/cliprtn%.json: $(OUT)/val.bdz $(OUT)/clip%.bdz
	$(BD_BIN)/bd-eval --model $(MODEL) -T 512 --quant int --bits $* --group $(GROUP) --clip $(OUT)/clip$*.bdz --json $< > $@

ppl = sed 's/.*"ppl":\([0-9.]*\).*/\1/' $(1)
$(OUT)/results.md: $(OUT)/fp.json $(foreach b,$(BITS),$(OUT)/rtn$(b).json $(OUT)/cliprtn$(b).json)
	@{ echo "| model | bits | group | perplexity on tinystories_val_a.txt (512-token windows) |"; \
	   echo "|---|---|---|---|"; \
	   echo "| full precision | 32 | - | $$($(call ppl,$(OUT)/fp.json)) |"; \
	   for b in $(BITS); do \
	     echo "| RTN | $$b | $(GROUP) | $$($(call ppl,$(OUT)/rtn$$b.json)) |"; \
	     echo "| clip + RTN | $$b | $(GROUP) | $$($(call ppl,$(OUT)/cliprtn$$b.json)) |"; \
	   done; } > $@
