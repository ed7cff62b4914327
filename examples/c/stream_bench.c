/* Streaming throughput from C: sesphr's sealer and opener against OpenSSL's
 * EVP ChaCha20-Poly1305 over the same data, in the same run.
 *
 *   make -C examples/c stream_bench IN_TREE=1   (needs libssl-dev)
 *   examples/c/stream_bench [MEGABYTES]         (default 200)
 *
 * Both sides take the data in 64 KiB records and authenticate every record
 * and write into the caller's memory (sesphr's `_update_into` calls)
 * (sesphr's STREAM chunks are 64 KiB; OpenSSL gets one nonce and one tag
 * per record, as a TLS-like record layer would). Each side runs three
 * times, alternately; the best of each is reported, with the ratio
 * sesphr / OpenSSL. Nothing secret is printed. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sesphr.h"

#define RECORD (64 * 1024)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void check(sesphr_result r, const char *what) {
    if (r != SESPHR_RESULT_OK) {
        fprintf(stderr, "%s: %s (%s)\n", what, sesphr_result_message(r), sesphr_last_error_detail());
        exit(1);
    }
}

/* Seals `records` records of `data` as one portion, then opens it as the
 * patient, record by record; returns the seconds of each half. */
static void sesphr_run(const sesphr_patient_keys *keys, const uint8_t *ppk, size_t ppk_len,
                       const uint8_t *data, size_t records, double *seal_s, double *open_s) {
    /* The sealed portion, kept to open it: records + per-chunk tags + header. */
    size_t cap = records * (RECORD + 64) + sesphr_stream_output_bound(RECORD), len = 0;
    uint8_t *sealed = malloc(cap);
    if (sealed == NULL) {
        exit(1);
    }
    sesphr_sealer *s = NULL;
    const uint8_t record_id[16] = {1};
    double t = now();
    check(sesphr_sealer_new(ppk, ppk_len, record_id, sizeof record_id, 1700000000, &s), "sealer");
    /* Sealed straight into the stored portion, no library buffer. */
    for (size_t i = 0; i < records + 1; i++) {
        size_t n = 0, room = cap - len;
        if (room < sesphr_stream_output_bound(RECORD)) {
            exit(1);
        }
        if (i < records) {
            check(sesphr_sealer_update_into(s, data, RECORD, sealed + len, room, &n), "seal");
        } else {
            check(sesphr_sealer_finish_into(s, sealed + len, room, &n), "finish");
        }
        len += n;
    }
    sesphr_sealer_free(s);
    *seal_s = now() - t;

    size_t header_len = 0;
    check(sesphr_header_len(sealed, len, &header_len), "header length");
    sesphr_opener *o = NULL;
    uint64_t plain = 0;
    t = now();
    check(sesphr_opener_new_owner(keys, sealed, header_len, &o), "opener");
    /* Opened into one plaintext buffer of the caller's, reused. */
    size_t room = sesphr_stream_output_bound(RECORD + 16);
    uint8_t *out = malloc(room);
    if (out == NULL) {
        exit(1);
    }
    for (size_t at = header_len; at < len; at += RECORD + 16) {
        size_t n = len - at < RECORD + 16 ? len - at : RECORD + 16, got = 0;
        check(sesphr_opener_update_into(o, sealed + at, n, out, room, &got), "open");
        plain += got;
    }
    size_t got = 0;
    check(sesphr_opener_finish_into(o, out, room, &got), "open finish");
    plain += got;
    sesphr_opener_free(o);
    free(out);
    *open_s = now() - t;
    if (plain != (uint64_t)records * RECORD) {
        fprintf(stderr, "opened %llu bytes, sealed %llu\n", (unsigned long long)plain,
                (unsigned long long)records * RECORD);
        exit(1);
    }
    free(sealed);
}

/* The same records through EVP ChaCha20-Poly1305: sealed into `out`, then
 * opened back, one nonce and one tag per record. */
static void openssl_run(const uint8_t *data, size_t records, double *seal_s, double *open_s) {
    uint8_t key[32], nonce[12] = {0}, tag[16];
    for (size_t i = 0; i < sizeof key; i++) {
        key[i] = (uint8_t)(i * 7 + 1);
    }
    uint8_t *sealed = malloc(records * (RECORD + 16));
    uint8_t *plain = malloc(RECORD);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (sealed == NULL || plain == NULL || ctx == NULL) {
        exit(1);
    }
    int n = 0;
    double t = now();
    for (size_t i = 0; i < records; i++) {
        memcpy(nonce, &i, sizeof i);
        uint8_t *c = sealed + i * (RECORD + 16);
        if (EVP_EncryptInit_ex(ctx, EVP_chacha20_poly1305(), NULL, key, nonce) != 1 ||
            EVP_EncryptUpdate(ctx, c, &n, data, RECORD) != 1 ||
            EVP_EncryptFinal_ex(ctx, c + n, &n) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, c + RECORD) != 1) {
            exit(1);
        }
    }
    *seal_s = now() - t;
    t = now();
    for (size_t i = 0; i < records; i++) {
        memcpy(nonce, &i, sizeof i);
        uint8_t *c = sealed + i * (RECORD + 16);
        memcpy(tag, c + RECORD, 16);
        if (EVP_DecryptInit_ex(ctx, EVP_chacha20_poly1305(), NULL, key, nonce) != 1 ||
            EVP_DecryptUpdate(ctx, plain, &n, c, RECORD) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, tag) != 1 ||
            EVP_DecryptFinal_ex(ctx, plain + n, &n) != 1) {
            fprintf(stderr, "OpenSSL open failed\n");
            exit(1);
        }
    }
    *open_s = now() - t;
    EVP_CIPHER_CTX_free(ctx);
    free(plain);
    free(sealed);
}

int main(int argc, char **argv) {
    size_t mb = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 200;
    size_t records = mb * 1024 * 1024 / RECORD;
    if (records == 0) {
        return 2;
    }
    uint8_t *data = malloc(RECORD);
    if (data == NULL) {
        return 1;
    }
    for (size_t i = 0; i < RECORD; i++) {
        data[i] = (uint8_t)(i * 31 + 7);
    }
    sesphr_patient_keys *keys = NULL;
    check(sesphr_patient_keys_generate((const uint8_t *)"patient-bench", 13, &keys), "keys");
    sesphr_buffer *ppk = NULL;
    check(sesphr_patient_keys_portion_public_key(keys, (const uint8_t *)"imaging", 7, 0, &ppk),
          "portion key");

    double best[4] = {1e9, 1e9, 1e9, 1e9};
    for (int round = 0; round < 3; round++) {
        double s, o;
        sesphr_run(keys, sesphr_buffer_data(ppk), sesphr_buffer_len(ppk), data, records, &s, &o);
        best[0] = s < best[0] ? s : best[0];
        best[1] = o < best[1] ? o : best[1];
        openssl_run(data, records, &s, &o);
        best[2] = s < best[2] ? s : best[2];
        best[3] = o < best[3] ? o : best[3];
    }
    double bytes = (double)records * RECORD / 1e6;
    printf("%zu MB in 64 KiB records, best of 3, one thread (sesphr %s)\n", mb, sesphr_version());
    printf("seal: sesphr %.0f MB/s, OpenSSL EVP ChaCha20-Poly1305 %.0f MB/s, ratio %.2f\n",
           bytes / best[0], bytes / best[2], best[2] / best[0]);
    printf("open: sesphr %.0f MB/s, OpenSSL EVP ChaCha20-Poly1305 %.0f MB/s, ratio %.2f\n",
           bytes / best[1], bytes / best[3], best[3] / best[1]);
    sesphr_buffer_free(ppk);
    sesphr_patient_keys_free(keys);
    free(data);
    return 0;
}
