// bd-cat: print bd streams as JSON lines (header, records, trailer), or validate them, or
// join the shards of a bd-teacher-gen run into the whole run's stream.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bd_json.h"
#include "bd_outfile.h"
#include "bd_tool.h"

static const char help[] =
        "Usage: bd-cat [OPTIONS] [FILE...]\n"
        "       bd-cat --merge-shards SHARD... [-o FILE]\n"
        "Print bd streams (FILE, or standard input) as one JSON object per line: the header,\n"
        "each record, then the trailer {\"end\":true,\"records\":N}. Tensors are summarized as\n"
        "name, dtype and shape.\n"
        "\n"
        "  -f, --full          print tensor values as flat JSON arrays\n"
        "  -c, --check         only validate (every tensor as its readers do); print one summary line\n"
        "                      per file\n"
        "      --header        print only the header of each stream (does not validate the rest)\n"
        "  -n, --limit N       print at most N records (the rest is still validated; --records N: a\n"
        "                      deprecated spelling)\n"
        "  -s, --schema NAME   fail unless the stream has this schema\n"
        "      --merge-shards  join the N bd.samples streams of bd-teacher-gen --shard K/N runs\n"
        "                      (any order) into the stream of the whole run, samples in index\n"
        "                      order, header as the run without --shard writes it\n"
        "  -o, --output FILE   write to FILE instead of standard output\n" BD_COMMON_HELP
        "\nExit status: 0 if every stream is complete and valid, 1 otherwise, 2 on usage errors.\n"
        "See bd-cat(1), bd-stream(5).\n";

enum { OPT_HEADER = BD_OPT_FIRST_TOOL, OPT_RECORDS, OPT_MERGE };

// --check: every tensor of an object must pass the readers' own test (bd_obj_tensor).
static void check_tensors(const bd_reader *r, const msgpack_object *o) {
    char why[300];
    if (bd_obj_check_tensors(o, why, sizeof why) < 0) {
        uint64_t i = bd_reader_record_index(r);
        if (i == 0) bd_fatal("\"%s\" header: %s", bd_reader_name(r), why);
        bd_fatal("\"%s\" record %llu: %s", bd_reader_name(r), (unsigned long long)i, why);
    }
}

// --merge-shards: the shards' headers are checked to be one run's, then the records are
// interleaved back into index order under shard 0's header without its shard.
// (File-scope, so that what is still held when an error exits is reachable, not a leak.)
static bd_reader **rs;
static const msgpack_object **hdrs;
static const char **names;
static int *order;

static void merge_shards(int n, char **paths, const char *output) {
    rs = calloc((size_t)n, sizeof *rs);
    hdrs = calloc((size_t)n, sizeof *hdrs);
    names = calloc((size_t)n, sizeof *names);
    order = calloc((size_t)n, sizeof *order);
    if (!rs || !hdrs || !names || !order) bd_fatal("out of memory");
    for (int i = 0; i < n; i++) {
        rs[i] = bd_tool_open_reader(paths[i], NULL);
        hdrs[i] = bd_reader_header(rs[i]), names[i] = bd_reader_name(rs[i]);
        if (strcmp(bd_reader_schema(rs[i]), "bd.samples"))
            bd_fatal("\"%s\" is a %s stream; --merge-shards joins bd.samples shards%s", names[i],
                     bd_reader_schema(rs[i]),
                     strcmp(bd_reader_schema(rs[i]), "bd.eval-part") ? "" : " (bd-eval --combine joins these)");
    }
    char why[1200];
    if (bd_shards_check(hdrs, names, n, order, why, sizeof why) < 0) bd_fatal("%s", why);
    bd_shard s;
    int64_t units;
    if (bd_shard_read(hdrs[order[0]], names[order[0]], &s, &units, why, sizeof why) < 0) bd_fatal("%s", why);
    bd_writer *w = bd_tool_open_writer(output);
    bd_shard_pack_merged_header(bd_writer_packer(w), hdrs[order[0]], NULL);
    if (bd_writer_end_object(w) < 0) bd_fatal("\"%s\": write failed: %s", output, strerror(errno));
    if (bd_shards_merge_records(rs, order, s.n, units, w, why, sizeof why) < 0) bd_fatal("%s", why);
    if (bd_writer_close(w) < 0) bd_fatal("\"%s\": write failed: %s", output, strerror(errno));
    for (int i = 0; i < n; i++) bd_reader_close(rs[i]);
    free(rs), free(hdrs), free(names), free(order);
}

int main(int argc, char **argv) {
    bd_tool_init("bd-cat", help, argc, argv);
    static const struct option longopts[] = {{"full", no_argument, 0, 'f'},
                                             {"check", no_argument, 0, 'c'},
                                             {"header", no_argument, 0, OPT_HEADER},
                                             {"limit", required_argument, 0, 'n'},
                                             {"records", required_argument, 0, OPT_RECORDS},
                                             {"schema", required_argument, 0, 's'},
                                             {"output", required_argument, 0, 'o'},
                                             {"merge-shards", no_argument, 0, OPT_MERGE},
                                             BD_COMMON_LONGOPTS,
                                             {0, 0, 0, 0}};
    bool full = false, check = false, header_only = false, merge = false;
    int64_t max_records = -1;
    const char *schema = NULL, *output = "-";
    int opt;
    while ((opt = getopt_long(argc, argv, "fcn:s:o:" BD_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (opt) {
        case 'f': full = true; break;
        case 'c': check = true; break;
        case OPT_HEADER: header_only = true; break;
        case OPT_RECORDS: bd_tool_deprecated("--records", "--limit"); /* fall through */
        case 'n': max_records = bd_arg_int("--limit", optarg, 0, INT64_MAX); break;
        case 's': schema = optarg; break;
        case 'o': output = optarg; break;
        case OPT_MERGE: merge = true; break;
        default: bd_tool_common_option(opt, optarg);
        }
    }
    bd_tool_options_done();
    if (check && (full || header_only)) bd_usage_error("--check cannot be combined with --full or --header");
    if (merge && (check || full || header_only || max_records >= 0 || schema))
        bd_usage_error("--merge-shards cannot be combined with --check, --full, --header, --limit or --schema");
    if (merge && optind == argc) bd_usage_error("--merge-shards needs the shards' files");
    if (merge)
        bd_tool_writes_stream("-o", output);
    else
        bd_tool_writes("-o", output);
    for (int i = optind; i < argc; i++) bd_tool_reads("FILE", argv[i]);
    bd_tool_check_files();
    if (merge) {
        merge_shards(argc - optind, argv + optind, output);
        return 0;
    }

    bd_outfile *out = bd_outfile_open(output, "w");
    if (!out) bd_fatal("\"%s\": cannot create: %s", output, strerror(errno));
    FILE *f = bd_outfile_fp(out);
    int nfiles = optind < argc ? argc - optind : 1;
    for (int i = 0; i < nfiles; i++) {
        const char *path = optind < argc ? argv[optind + i] : "-";
        bd_reader *r = bd_tool_open_reader(path, schema);
        if (check) {
            check_tensors(r, bd_reader_header(r));
        } else {
            bd_json_write(f, bd_reader_header(r), full);
            fputc('\n', f);
        }
        if (header_only) {
            bd_reader_close(r);
            continue;
        }
        const msgpack_object *rec;
        int rc;
        uint64_t n = 0;
        while ((rc = bd_reader_next(r, &rec)) == BD_OK) {
            if (check)
                check_tensors(r, rec);
            else if (max_records < 0 || (int64_t)n < max_records) {
                bd_json_write(f, rec, full);
                fputc('\n', f);
            }
            n++;
        }
        if (rc != BD_EOF) bd_tool_reader_fatal(r);
        if (check) {
            fputs("{\"file\":", f);
            bd_json_string(f, path, strlen(path));
            fputs(",\"schema\":", f);
            bd_json_string(f, bd_reader_schema(r), strlen(bd_reader_schema(r)));
            fprintf(f, ",\"records\":%llu,\"ok\":true}\n", (unsigned long long)n);
        } else {
            fprintf(f, "{\"end\":true,\"records\":%llu}\n", (unsigned long long)n);
        }
        bd_reader_close(r);
    }
    if (bd_outfile_commit(out) != BD_OK) bd_fatal("\"%s\": write failed: %s", output, strerror(errno));
    return 0;
}
