/* A host that links libsesphr.a together with its own static SQLite: the
 * link succeeds (no duplicate symbols), the host's SQLite is the one it
 * gets, and sesphr's SRS still works on its own (bundled, hidden) SQLite. */
#define _POSIX_C_SOURCE 200809L
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "sesphr.h"

int main(int argc, char **argv)
{
    static const uint8_t key[SESPHR_STORAGE_KEY_LEN] = {1};
    char path[1024];
    sesphr_srs *srs = NULL;
    uint64_t entries = 99;
    sesphr_result r;
    if (argc < 2) {
        fprintf(stderr, "usage: %s SCRATCH_DIR\n", argv[0]);
        return 2;
    }
    if (sqlite3_libversion_number() != SQLITE_VERSION_NUMBER) {
        fprintf(stderr, "the host got SQLite %s, not its own %s\n", sqlite3_libversion(), SQLITE_VERSION);
        return 1;
    }
    snprintf(path, sizeof path, "%s/static.db", argv[1]);
    remove(path);
    r = sesphr_srs_open_sqlite(path, key, sizeof key, NULL, 0, NULL, &srs);
    if (r == SESPHR_RESULT_OK)
        r = sesphr_srs_verify_audit(srs, &entries);
    sesphr_srs_free(srs);
    if (r != SESPHR_RESULT_OK || entries != 0) {
        fprintf(stderr, "sesphr: %s\n", sesphr_result_message(r));
        return 1;
    }
    printf("host SQLite %s beside sesphr %s: 1 passed, 0 failed\n", sqlite3_libversion(), sesphr_version());
    return 0;
}
