// Fuzz target: a bd.samples stream through its readers: bd-qat's (bd_seqs_from_samples:
// sequences and, with the header's logits_top_k, the teacher's stored rows; vocabulary 32)
// and bd-teacher-gen --resume's (its header against a run's, its records checked against the
// run's limits and copied). The first byte: bit 0 --mask-prompt, bit 1 --teacher-logits, bit 2
// copy even when the headers differ, bit 3 a run without top-K rows, bits 4-7 T - 2 and the
// samples to copy; the rest is the msgpack content, compressed here.
#include "bd_samples.h"
#include "bd_seqs.h"
#include "fuzz_util.h"

enum { V = 32 };

// The header of a run (4 samples from BOS, top-4 rows), as a resumed run compares it.
static const msgpack_object *run_header(void) {
    static msgpack_sbuffer sb;
    static msgpack_unpacked u;
    static bool ready;
    if (ready) return &u.data;
    bd_prompt_opts po = {.kind = "bos", .template_ = ""};
    bd_gen_opts go = {.sampling = {.temperature = 0.7, .top_k = 0, .top_p = 1.0},
                      .max_new = 8,
                      .batch = 1,
                      .seed = 1,
                      .stop_ids = {2},
                      .n_stop = 1,
                      .logits_top_k = 4};
    bd_samples_run run = {.model_path = "tiny",
                          .desc = "tiny",
                          .tok_id = "",
                          .vocab = V,
                          .bos = 1,
                          .eos = 2,
                          .po = &po,
                          .n_prompts = 1,
                          .hash = "0000000000000000",
                          .go = &go,
                          .n = 4,
                          .threads = 1};
    msgpack_sbuffer_init(&sb);
    bd_samples_pack_header(&sb, &run);
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, sb.data, sb.size, NULL) != MSGPACK_UNPACK_SUCCESS) abort();
    ready = true;
    return &u.data;
}

// bd-qat --data: the sequences, one batch of the last, and its teacher rows.
static void read_for_training(const char *path, uint8_t flags) {
    int T = 2 + (flags >> 4);
    bd_seqs s;
    char why[512];
    if (bd_seqs_from_samples(&s, path, V, T, flags & 1, flags & 2, why, sizeof why) != BD_OK) return;
    if (s.n > 0) {
        long long idx[1] = {s.n - 1};
        int32_t tok[17], tgt[17];
        float u[17 * V];
        bd_seqs_gather(&s, idx, 1, tok, tgt, NULL);
        if (s.tk) bd_seqs_teacher_logits(&s, idx, 1, tgt, u, V);
    }
    bd_seqs_free(&s);
}

// bd-teacher-gen --resume: the header checked, the records copied into a stream discarded.
static void read_for_resume(const char *path, uint8_t flags) {
    int err;
    char why[512], out[700];
    bd_reader *r = bd_reader_open(path, "bd.samples", &err, why, sizeof why);
    if (!r) return;
    unsigned differs;
    int64_t copied;
    static const int32_t bos = 1;
    bd_gen_prompt prompt = {&bos, 1};
    bd_samples_limits lim = {V, 64, 8, flags & 8 ? 0 : 4, &prompt, 1};
    bd_writer *w = NULL;
    snprintf(out, sizeof out, "%s/copy.bdz", fz_dir());
    if ((bd_samples_check_resume(bd_reader_header(r), run_header(), path, &differs, why, sizeof why) == BD_OK ||
         (flags & 4)) &&
        (w = bd_writer_open(out, 1, &err))) {
        if (bd_samples_copy(r, w, 1 + (flags >> 4), NULL, &lim, &copied, why, sizeof why)) {}
        bd_writer_abort(w);
    }
    bd_reader_close(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const char *p = fz_write_zstd("samples.bdz", data + 1, size - 1);
    if (!p) return 0;
    read_for_training(p, data[0]);
    read_for_resume(p, data[0]);
    return 0;
}
