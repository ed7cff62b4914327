/*
 * The fixture of the generated argument-rule test (tests/c_api.rs writes
 * abi_calls.c, which includes this): live objects of every handle type, and
 * the report format the Rust side checks. Each generated case prints
 *   case FUNCTION PARAM VARIANT CODE OUTS_UNTOUCHED DETAIL
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sesphr.h"

/* What out-parameters hold before a call: a failed call must leave them so. */
#define SENTINEL_BYTE 0xA5
#define SENTINEL_WORD 0xA5A5A5A5u
static uint8_t sentinel_object;
#define SENTINEL_PTR ((void *)&sentinel_object)

static const char *scratch_dir;
static unsigned scratch_seq;

static struct {
    sesphr_srs *srs;
    sesphr_patient_keys *keys;
    sesphr_keypair *keypair;
    sesphr_buffer *ppk;
    sesphr_buffer *sealed;
    size_t header_len;
} fx;

static void fixture_fail(const char *what, sesphr_result r)
{
    fprintf(stderr, "fixture: %s -> %u (%s)\n", what, (unsigned)r, sesphr_last_error_detail());
    exit(2);
}

#define FX(call)                                     \
    do {                                             \
        sesphr_result r_ = (call);                   \
        if (r_ != SESPHR_RESULT_OK)                  \
            fixture_fail(#call, r_);                 \
    } while (0)

static void fixture_new(void)
{
    static const uint8_t storage_key[SESPHR_STORAGE_KEY_LEN] = {7};
    static const uint8_t record[SESPHR_RECORD_ID_LEN] = {1};
    FX(sesphr_srs_new_in_memory(storage_key, sizeof storage_key, NULL, 0, NULL, &fx.srs));
    FX(sesphr_patient_keys_generate((const uint8_t *)"patient-1", 9, &fx.keys));
    FX(sesphr_keypair_generate(&fx.keypair));
    FX(sesphr_patient_keys_portion_public_key(fx.keys, (const uint8_t *)"lab", 3, 0, &fx.ppk));
    FX(sesphr_seal(sesphr_buffer_data(fx.ppk), sesphr_buffer_len(fx.ppk), record, sizeof record, 1,
                   (const uint8_t *)"HbA1c 5.4%", 10, &fx.sealed));
    FX(sesphr_header_len(sesphr_buffer_data(fx.sealed), sesphr_buffer_len(fx.sealed), &fx.header_len));
}

static void fixture_free(void)
{
    sesphr_srs_free(fx.srs);
    sesphr_patient_keys_free(fx.keys);
    sesphr_keypair_free(fx.keypair);
    sesphr_buffer_free(fx.ppk);
    sesphr_buffer_free(fx.sealed);
}

/* Fresh stateful handles, one per call (a call may finish a stream). */
static sesphr_sealer *fresh_sealer(void)
{
    static const uint8_t record[SESPHR_RECORD_ID_LEN] = {2};
    sesphr_sealer *s = NULL;
    FX(sesphr_sealer_new(sesphr_buffer_data(fx.ppk), sesphr_buffer_len(fx.ppk), record, sizeof record, 1, &s));
    return s;
}

static sesphr_opener *fresh_opener(void)
{
    sesphr_opener *o = NULL;
    FX(sesphr_opener_new_owner(fx.keys, sesphr_buffer_data(fx.sealed), fx.header_len, &o));
    return o;
}

/* An input of exactly `len` bytes (zeroes) on the heap, so that a read
 * past its end is an AddressSanitizer or valgrind error. */
static uint8_t *input(size_t len)
{
    uint8_t *p = malloc(len == 0 ? 1 : len);
    if (p == NULL)
        exit(3);
    memset(p, 0, len == 0 ? 1 : len);
    return p;
}

/* A fresh scratch path for the stores a call may open. */
static const char *scratch_path(char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/abi-%u.db", scratch_dir, ++scratch_seq);
    return buf;
}

static int callback(const uint8_t *data, size_t len, void *ctx)
{
    (void)data;
    (void)len;
    (void)ctx;
    return 0;
}

static int all_bytes(const void *p, size_t n, uint8_t v)
{
    const uint8_t *b = p;
    size_t i;
    for (i = 0; i < n; i++)
        if (b[i] != v)
            return 0;
    return 1;
}

static void report(const char *fn, const char *param, const char *variant, sesphr_result r, int untouched)
{
    const char *d = sesphr_last_error_detail();
    printf("case %s %s %s %u %d %s\n", fn, param, variant, (unsigned)r, untouched, d);
}
