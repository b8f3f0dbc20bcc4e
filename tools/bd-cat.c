// bd-cat: print bd streams as JSON lines (header, records, trailer), or validate them.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bd_json.h"
#include "bd_outfile.h"
#include "bd_tool.h"

static const char help[] =
        "Usage: bd-cat [OPTIONS] [FILE...]\n"
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
        "  -o, --output FILE   write to FILE instead of standard output\n" BD_COMMON_HELP
        "\nExit status: 0 if every stream is complete and valid, 1 otherwise, 2 on usage errors.\n"
        "See bd-cat(1), bd-stream(5).\n";

enum { OPT_HEADER = BD_OPT_FIRST_TOOL, OPT_RECORDS };

// --check: every tensor of an object must pass the readers' own test (bd_obj_tensor).
static void check_tensors(const bd_reader *r, const msgpack_object *o) {
    char why[300];
    if (bd_obj_check_tensors(o, why, sizeof why) < 0) {
        uint64_t i = bd_reader_record_index(r);
        if (i == 0) bd_fatal("\"%s\" header: %s", bd_reader_name(r), why);
        bd_fatal("\"%s\" record %llu: %s", bd_reader_name(r), (unsigned long long)i, why);
    }
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
                                             BD_COMMON_LONGOPTS,
                                             {0, 0, 0, 0}};
    bool full = false, check = false, header_only = false;
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
        default: bd_tool_common_option(opt, optarg);
        }
    }
    bd_tool_options_done();
    if (check && (full || header_only)) bd_usage_error("--check cannot be combined with --full or --header");
    bd_tool_writes("-o", output);
    for (int i = optind; i < argc; i++) bd_tool_reads("FILE", argv[i]);
    bd_tool_check_files();

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
