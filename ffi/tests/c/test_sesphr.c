/*
 * C tests of libsesphr, driven by tests/c_api.rs (so `cargo test` runs them)
 * and run under valgrind and ASan/UBSan by .ci/run.
 *
 * Usage: test_sesphr VECTORS_FILE SCRATCH_DIR
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sesphr.h"

static int passed = 0;
static int failed = 0;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (cond) {                                                              \
            passed++;                                                            \
        } else {                                                                 \
            failed++;                                                            \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                        \
    } while (0)

#define EXPECT(call, want)                                                       \
    do {                                                                         \
        sesphr_result got_ = (call);                                             \
        if (got_ == (sesphr_result)(want)) {                                     \
            passed++;                                                            \
        } else {                                                                 \
            failed++;                                                            \
            fprintf(stderr, "%s:%d: %s -> %u (%s), want %u (%s)\n", __FILE__, __LINE__, #call, \
                    (unsigned)got_, sesphr_result_message(got_), (unsigned)(want),  \
                    sesphr_result_message(want));                                \
        }                                                                        \
    } while (0)

#define OK(call) EXPECT(call, SESPHR_RESULT_OK)
#define S(str) (const uint8_t *)(str), strlen(str)

static const uint8_t STORAGE_KEY[SESPHR_STORAGE_KEY_LEN] = {7};

/* True if a buffer holds exactly these bytes. */
static int buf_eq(const sesphr_buffer *b, const uint8_t *p, size_t n)
{
    return b != NULL && sesphr_buffer_len(b) == n && (n == 0 || memcmp(sesphr_buffer_data(b), p, n) == 0);
}

/* ---------------------------------------------------------------- basics */

static void test_basics(void)
{
    const char *v = sesphr_version();
    CHECK(v != NULL && strlen(v) > 0);
    CHECK(strcmp(sesphr_result_message(SESPHR_RESULT_OK), "success") == 0);
    CHECK(strcmp(sesphr_result_message(SESPHR_RESULT_DENIED_REVOKED), "denied: grant revoked") == 0);
    CHECK(strcmp(sesphr_result_message(123456u), "unknown result code") == 0);
    CHECK(sesphr_buffer_data(NULL) == NULL);
    CHECK(sesphr_buffer_len(NULL) == 0);
    /* Every _free(NULL) is a no-op. */
    sesphr_buffer_free(NULL);
    sesphr_keypair_free(NULL);
    sesphr_patient_keys_free(NULL);
    sesphr_sealer_free(NULL);
    sesphr_opener_free(NULL);
    sesphr_srs_free(NULL);
}

/* ------------------------------------------------------------ full flow */

struct world {
    sesphr_srs *srs;
    sesphr_patient_keys *patient;
    sesphr_keypair *doctor;
    sesphr_keypair *researcher;
    sesphr_buffer *ppk_medical;
    sesphr_buffer *ppk_lab;
};

static void world_free(struct world *w)
{
    sesphr_srs_free(w->srs);
    sesphr_patient_keys_free(w->patient);
    sesphr_keypair_free(w->doctor);
    sesphr_keypair_free(w->researcher);
    sesphr_buffer_free(w->ppk_medical);
    sesphr_buffer_free(w->ppk_lab);
}

/* Registers `name` with `role` and the proof that it holds `kp`. */
static sesphr_result register_user_kp(sesphr_srs *srs, const char *name, const char *role,
                                      const sesphr_keypair *kp)
{
    uint8_t pk[SESPHR_PUBLIC_KEY_LEN], proof[SESPHR_KEY_PROOF_LEN];
    OK(sesphr_keypair_public_key(kp, pk, sizeof pk));
    OK(sesphr_keypair_prove_possession(kp, (const uint8_t *)name, strlen(name), proof, sizeof proof));
    return sesphr_srs_register_user(srs, (const uint8_t *)name, strlen(name), (const uint8_t *)role,
                                    strlen(role), pk, sizeof pk, proof, sizeof proof);
}

/* The patient's signed registration with `n` portions of epoch 0. */
static sesphr_buffer *registration(const sesphr_patient_keys *p, const char **labels, size_t n)
{
    const uint8_t *ls[8];
    size_t lens[8];
    uint32_t epochs[8] = {0};
    size_t i;
    sesphr_buffer *out = NULL;
    for (i = 0; i < n && i < 8; i++) {
        ls[i] = (const uint8_t *)labels[i];
        lens[i] = strlen(labels[i]);
    }
    OK(sesphr_patient_registration(p, ls, lens, epochs, n, &out));
    return out;
}

static sesphr_result register_patient_keys(sesphr_srs *srs, const sesphr_patient_keys *p,
                                           const char **labels, size_t n)
{
    sesphr_buffer *reg = registration(p, labels, n);
    sesphr_result r = sesphr_srs_register_patient(srs, sesphr_buffer_data(reg), sesphr_buffer_len(reg));
    sesphr_buffer_free(reg);
    return r;
}

static void world_new(struct world *w, sesphr_srs *srs)
{
    const char *labels[2] = {"medical", "lab"};
    memset(w, 0, sizeof *w);
    w->srs = srs;
    OK(sesphr_patient_keys_generate(S("patient-0042"), &w->patient));
    OK(sesphr_patient_keys_portion_public_key(w->patient, S("medical"), 0, &w->ppk_medical));
    OK(sesphr_patient_keys_portion_public_key(w->patient, S("lab"), 0, &w->ppk_lab));
    OK(register_patient_keys(srs, w->patient, labels, 2));
    OK(sesphr_keypair_generate(&w->doctor));
    OK(register_user_kp(srs, "dr-house", "doctor", w->doctor));
    OK(sesphr_keypair_generate(&w->researcher));
    OK(register_user_kp(srs, "researcher-17", "researcher", w->researcher));
}

/* `patient` signs a grant of `label` to `user` for `kp`'s key; the SRS installs it. */
static sesphr_result grant_as(sesphr_srs *srs, const sesphr_patient_keys *patient, const char *user,
                              const sesphr_keypair *kp, const char *label,
                              const sesphr_grant_options *options)
{
    uint8_t pk[SESPHR_PUBLIC_KEY_LEN];
    sesphr_buffer *rk = NULL, *signed_grant = NULL;
    sesphr_result r;
    OK(sesphr_keypair_public_key(kp, pk, sizeof pk));
    OK(sesphr_rekey_generate(patient, S(label), 0, pk, sizeof pk, &rk));
    r = sesphr_sign_grant(patient, S(label), 0, S(user), sesphr_buffer_data(rk), sesphr_buffer_len(rk),
                          options, &signed_grant);
    if (r == SESPHR_RESULT_OK)
        r = sesphr_srs_grant(srs, sesphr_buffer_data(signed_grant), sesphr_buffer_len(signed_grant),
                             sesphr_buffer_data(rk), sesphr_buffer_len(rk));
    sesphr_buffer_free(rk);
    sesphr_buffer_free(signed_grant);
    return r;
}

static void grant(struct world *w, const char *user, sesphr_keypair *kp, const char *label,
                  const uint64_t *since, sesphr_result want)
{
    sesphr_grant_options o = SESPHR_GRANT_OPTIONS_INIT;
    if (since) {
        o.has_since = 1;
        o.since = *since;
    }
    EXPECT(grant_as(w->srs, w->patient, user, kp, label, &o), want);
}

/* `patient` signs a revocation; the SRS carries it out (receipt checked). */
static sesphr_result revoke_as(sesphr_srs *srs, const sesphr_patient_keys *patient, const char *label,
                               const char *user)
{
    sesphr_buffer *sig = NULL, *receipt = NULL;
    uint8_t key[32];
    sesphr_result r = sesphr_sign_revocation(patient, S(label), S(user), &sig);
    if (r == SESPHR_RESULT_OK)
        r = sesphr_srs_revoke(srs, sesphr_buffer_data(sig), sesphr_buffer_len(sig), &receipt);
    if (r == SESPHR_RESULT_OK) {
        OK(sesphr_srs_verifying_key(srs, key, sizeof key));
        OK(sesphr_revocation_receipt_verify(sesphr_buffer_data(receipt), sesphr_buffer_len(receipt), key,
                                            sizeof key));
        key[0] ^= 1;
        CHECK(sesphr_revocation_receipt_verify(sesphr_buffer_data(receipt), sesphr_buffer_len(receipt), key,
                                               sizeof key) != SESPHR_RESULT_OK);
    }
    sesphr_buffer_free(sig);
    sesphr_buffer_free(receipt);
    return r;
}

/* Re-encrypts `sealed` for `user` and opens it with `kp`; returns the result code. */
static sesphr_result read_as(struct world *w, const char *user, sesphr_keypair *kp,
                             const sesphr_buffer *sealed, const char *expect_text)
{
    sesphr_buffer *header = NULL, *rc = NULL, *pt = NULL;
    sesphr_result r;
    OK(sesphr_portion_header(sesphr_buffer_data(sealed), sesphr_buffer_len(sealed), &header));
    r = sesphr_srs_reencrypt(w->srs, S(user), sesphr_buffer_data(header), sesphr_buffer_len(header),
                             SESPHR_PURPOSE_TREATMENT, NULL, 0, 1, &rc);
    if (r == SESPHR_RESULT_OK) {
        CHECK(rc != NULL);
        OK(sesphr_open_as_delegatee(kp, sesphr_buffer_data(sealed), sesphr_buffer_len(sealed),
                                    sesphr_buffer_data(rc), sesphr_buffer_len(rc), &pt));
        CHECK(buf_eq(pt, (const uint8_t *)expect_text, strlen(expect_text)));
    } else {
        CHECK(rc == NULL);
    }
    sesphr_buffer_free(header);
    sesphr_buffer_free(rc);
    sesphr_buffer_free(pt);
    return r;
}

static sesphr_buffer *seal(const sesphr_buffer *ppk, uint8_t record, uint64_t created_at, const char *text)
{
    uint8_t rid[SESPHR_RECORD_ID_LEN];
    sesphr_buffer *out = NULL;
    memset(rid, record, sizeof rid);
    OK(sesphr_seal(sesphr_buffer_data(ppk), sesphr_buffer_len(ppk), rid, sizeof rid, created_at,
                   (const uint8_t *)text, strlen(text), &out));
    return out;
}

/* Every one-bit flip and every truncation of a backup fails to import,
 * with nothing written to the out-parameter. */
typedef sesphr_result (*import_fn)(const uint8_t *, size_t, void *);

static sesphr_result import_patient(const uint8_t *b, size_t n, void *out)
{
    return sesphr_patient_keys_import(b, n, (sesphr_patient_keys **)out);
}

static sesphr_result import_keypair(const uint8_t *b, size_t n, void *out)
{
    return sesphr_keypair_import(b, n, (sesphr_keypair **)out);
}

static sesphr_result import_escrow(const uint8_t *b, size_t n, void *out)
{
    return sesphr_escrow_seed_import(b, n, (uint8_t *)out, 32);
}

static void check_backup_refuses_corruption(const sesphr_buffer *backup, import_fn import)
{
    size_t n = sesphr_buffer_len(backup);
    uint8_t *copy = malloc(n);
    CHECK(copy != NULL);
    if (copy == NULL) return;
    int accepted = 0, written = 0;
    for (size_t bit = 0; bit < n * 8; bit++) {
        memcpy(copy, sesphr_buffer_data(backup), n);
        copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        uint8_t out[64];
        memset(out, 0xAB, sizeof out);
        if (import(copy, n, out) == SESPHR_RESULT_OK) accepted++;
        for (size_t i = 0; i < sizeof out; i++) written |= out[i] != 0xAB;
    }
    for (size_t cut = 0; cut < n; cut++) {
        uint8_t out[64];
        memset(out, 0xAB, sizeof out);
        if (import(sesphr_buffer_data(backup), cut, out) == SESPHR_RESULT_OK) accepted++;
        for (size_t i = 0; i < sizeof out; i++) written |= out[i] != 0xAB;
    }
    CHECK(accepted == 0);
    CHECK(written == 0);
    free(copy);
}

static void test_backups(void)
{
    /* Patient keys: binary and text round trips, every flip refused. */
    sesphr_patient_keys *pk = NULL, *back = NULL;
    EXPECT(sesphr_patient_keys_generate((const uint8_t *)"patient-b", 9, &pk), SESPHR_RESULT_OK);
    sesphr_buffer *bin = NULL, *text = NULL;
    EXPECT(sesphr_patient_keys_export(pk, &bin), SESPHR_RESULT_OK);
    EXPECT(sesphr_patient_keys_export_text(pk, &text), SESPHR_RESULT_OK);
    CHECK(memcmp(sesphr_buffer_data(bin), "SPKB", 4) == 0);
    CHECK(memcmp(sesphr_buffer_data(text), "sesphr-patient1", 15) == 0);
    uint8_t m1[32], m2[32];
    EXPECT(sesphr_patient_keys_master(pk, m1, sizeof m1), SESPHR_RESULT_OK);
    EXPECT(sesphr_patient_keys_import(sesphr_buffer_data(text), sesphr_buffer_len(text), &back),
           SESPHR_RESULT_OK);
    EXPECT(sesphr_patient_keys_master(back, m2, sizeof m2), SESPHR_RESULT_OK);
    CHECK(memcmp(m1, m2, 32) == 0);
    sesphr_patient_keys_free(back);
    back = NULL;
    check_backup_refuses_corruption(bin, import_patient);
    check_backup_refuses_corruption(text, import_patient);
    {
        /* One character mistyped on paper: BAD_CHECKSUM. */
        size_t n = sesphr_buffer_len(text);
        char *t = malloc(n);
        CHECK(t != NULL);
        if (t != NULL) {
            memcpy(t, sesphr_buffer_data(text), n);
            t[n - 3] = t[n - 3] == 'q' ? 'p' : 'q';
            EXPECT(sesphr_patient_keys_import((const uint8_t *)t, n, &back),
                   SESPHR_RESULT_BAD_CHECKSUM);
            CHECK(back == NULL);
            free(t);
        }
    }
    sesphr_buffer_free(bin);
    sesphr_buffer_free(text);
    sesphr_patient_keys_free(pk);

    /* A user's secret key. */
    sesphr_keypair *kp = NULL, *kp2 = NULL;
    EXPECT(sesphr_keypair_generate(&kp), SESPHR_RESULT_OK);
    EXPECT(sesphr_keypair_export(kp, &bin), SESPHR_RESULT_OK);
    EXPECT(sesphr_keypair_export_text(kp, &text), SESPHR_RESULT_OK);
    CHECK(memcmp(sesphr_buffer_data(text), "sesphr-secret1", 14) == 0);
    uint8_t p1[32], p2[32];
    EXPECT(sesphr_keypair_public_key(kp, p1, sizeof p1), SESPHR_RESULT_OK);
    EXPECT(sesphr_keypair_import(sesphr_buffer_data(bin), sesphr_buffer_len(bin), &kp2),
           SESPHR_RESULT_OK);
    EXPECT(sesphr_keypair_public_key(kp2, p2, sizeof p2), SESPHR_RESULT_OK);
    CHECK(memcmp(p1, p2, 32) == 0);
    sesphr_keypair_free(kp2);
    kp2 = NULL;
    EXPECT(sesphr_keypair_import(sesphr_buffer_data(text), sesphr_buffer_len(text), &kp2),
           SESPHR_RESULT_OK);
    sesphr_keypair_free(kp2);
    check_backup_refuses_corruption(bin, import_keypair);
    check_backup_refuses_corruption(text, import_keypair);
    /* A secret key backup is not patient keys. */
    EXPECT(sesphr_patient_keys_import(sesphr_buffer_data(bin), sesphr_buffer_len(bin), &back),
           SESPHR_RESULT_MALFORMED);
    sesphr_buffer_free(bin);
    sesphr_buffer_free(text);
    sesphr_keypair_free(kp);

    /* An escrow seed. */
    uint8_t seed[32], seed2[32];
    for (int i = 0; i < 32; i++) seed[i] = (uint8_t)(7 * i + 1);
    EXPECT(sesphr_escrow_seed_export(seed, sizeof seed, 0, &bin), SESPHR_RESULT_OK);
    EXPECT(sesphr_escrow_seed_export(seed, sizeof seed, 1, &text), SESPHR_RESULT_OK);
    CHECK(memcmp(sesphr_buffer_data(text), "sesphr-escrow1", 14) == 0);
    EXPECT(sesphr_escrow_seed_import(sesphr_buffer_data(text), sesphr_buffer_len(text), seed2,
                                     sizeof seed2),
           SESPHR_RESULT_OK);
    CHECK(memcmp(seed, seed2, 32) == 0);
    EXPECT(sesphr_escrow_seed_export(seed, 31, 0, &bin), SESPHR_RESULT_INVALID_LENGTH);
    check_backup_refuses_corruption(bin, import_escrow);
    check_backup_refuses_corruption(text, import_escrow);
    sesphr_buffer_free(bin);
    sesphr_buffer_free(text);
}

static void test_full_flow(sesphr_srs *srs)
{
    struct world w;
    uint64_t since = 2000, entries = 0;
    sesphr_buffer *old_med, *old_lab, *new_lab, *pt = NULL, *audit = NULL;
    world_new(&w, srs);

    old_med = seal(w.ppk_medical, 1, 1000, "diagnosis: asthma");
    old_lab = seal(w.ppk_lab, 2, 1500, "HbA1c 5.4%");
    new_lab = seal(w.ppk_lab, 3, 2500, "LDL 96 mg/dL");

    /* The patient reads their own portions. */
    OK(sesphr_open_as_owner(w.patient, sesphr_buffer_data(old_med), sesphr_buffer_len(old_med), &pt));
    CHECK(buf_eq(pt, S("diagnosis: asthma")));
    sesphr_buffer_free(pt);

    /* Grants, backward access, scope. */
    grant(&w, "dr-house", w.doctor, "medical", NULL, SESPHR_RESULT_OK);
    grant(&w, "dr-house", w.doctor, "lab", NULL, SESPHR_RESULT_OK);
    grant(&w, "researcher-17", w.researcher, "lab", &since, SESPHR_RESULT_OK);
    EXPECT(read_as(&w, "dr-house", w.doctor, old_med, "diagnosis: asthma"), SESPHR_RESULT_OK);
    EXPECT(read_as(&w, "dr-house", w.doctor, old_lab, "HbA1c 5.4%"), SESPHR_RESULT_OK);
    EXPECT(read_as(&w, "researcher-17", w.researcher, old_lab, ""), SESPHR_RESULT_DENIED_OUT_OF_SCOPE);
    EXPECT(read_as(&w, "researcher-17", w.researcher, new_lab, "LDL 96 mg/dL"), SESPHR_RESULT_OK);
    EXPECT(read_as(&w, "researcher-17", w.researcher, old_med, ""), SESPHR_RESULT_DENIED_NOT_GRANTED);
    /* A grant for another user's key is refused. */
    grant(&w, "researcher-17", w.doctor, "medical", NULL, SESPHR_RESULT_RE_KEY_MISMATCH);

    /* Revocation: immediate, durable, nothing re-encrypted. */
    OK(revoke_as(srs, w.patient, "medical", "dr-house"));
    EXPECT(read_as(&w, "dr-house", w.doctor, old_med, ""), SESPHR_RESULT_DENIED_REVOKED);
    /* Revoked again, ending nothing: still recorded (and receipted). */
    OK(revoke_as(srs, w.patient, "medical", "dr-house"));
    EXPECT(read_as(&w, "dr-house", w.doctor, old_lab, "HbA1c 5.4%"), SESPHR_RESULT_OK);
    EXPECT(read_as(&w, "nobody", w.doctor, old_lab, ""), SESPHR_RESULT_DENIED_NOT_REGISTERED);

    /* Batch: three headers, one of them garbage. */
    {
        sesphr_buffer *h1 = NULL, *h2 = NULL;
        const uint8_t garbage[10] = {1, 2, 3};
        const uint8_t *hs[3];
        size_t lens[3];
        sesphr_buffer *outs[3] = {NULL, NULL, NULL};
        sesphr_result results[3] = {SESPHR_RESULT_PANIC, SESPHR_RESULT_PANIC, SESPHR_RESULT_PANIC};
        OK(sesphr_portion_header(sesphr_buffer_data(old_lab), sesphr_buffer_len(old_lab), &h1));
        OK(sesphr_portion_header(sesphr_buffer_data(old_med), sesphr_buffer_len(old_med), &h2));
        hs[0] = sesphr_buffer_data(h1); lens[0] = sesphr_buffer_len(h1);
        hs[1] = garbage; lens[1] = sizeof garbage;
        hs[2] = sesphr_buffer_data(h2); lens[2] = sesphr_buffer_len(h2);
        OK(sesphr_srs_reencrypt_batch(srs, S("dr-house"), hs, lens, 3, SESPHR_PURPOSE_TREATMENT, NULL, 0,
                                      outs, results));
        CHECK(results[0] == SESPHR_RESULT_OK && outs[0] != NULL);
        CHECK(results[1] == SESPHR_RESULT_BAD_MAGIC && outs[1] == NULL);
        CHECK(results[2] == SESPHR_RESULT_DENIED_REVOKED && outs[2] == NULL);
        OK(sesphr_open_as_delegatee(w.doctor, sesphr_buffer_data(old_lab), sesphr_buffer_len(old_lab),
                                    sesphr_buffer_data(outs[0]), sesphr_buffer_len(outs[0]), &pt));
        CHECK(buf_eq(pt, S("HbA1c 5.4%")));
        sesphr_buffer_free(pt);
        sesphr_buffer_free(outs[0]);
        sesphr_buffer_free(h1);
        sesphr_buffer_free(h2);
    }

    /* The patient's disclosure report, checked with the SRS's public key
     * alone; a witness's consistency proof between two checkpoints. */
    {
        sesphr_buffer *report = NULL, *cp1 = NULL, *cp2 = NULL, *proof = NULL;
        uint8_t key[32], *bent;
        size_t count = 0;
        uint64_t s1 = 0, s2 = 0;
        int i;
        OK(sesphr_srs_verifying_key(srs, key, sizeof key));
        OK(sesphr_srs_disclosure_report(srs, S("patient-0042"), 0, UINT64_MAX, &report));
        OK(sesphr_disclosure_report_verify(sesphr_buffer_data(report), sesphr_buffer_len(report), key,
                                           sizeof key, &count));
        CHECK(count == 5);
        bent = malloc(sesphr_buffer_len(report));
        memcpy(bent, sesphr_buffer_data(report), sesphr_buffer_len(report));
        bent[sesphr_buffer_len(report) / 2] ^= 1;
        CHECK(sesphr_disclosure_report_verify(bent, sesphr_buffer_len(report), key, sizeof key, NULL) !=
              SESPHR_RESULT_OK);
        free(bent);
        OK(sesphr_srs_checkpoint(srs, &cp1));
        EXPECT(read_as(&w, "dr-house", w.doctor, old_lab, "HbA1c 5.4%"), SESPHR_RESULT_OK);
        OK(sesphr_srs_checkpoint(srs, &cp2));
        CHECK(sesphr_buffer_len(cp1) == SESPHR_CHECKPOINT_LEN);
        for (i = 0; i < 8; i++) {
            s1 = (s1 << 8) | sesphr_buffer_data(cp1)[5 + i];
            s2 = (s2 << 8) | sesphr_buffer_data(cp2)[5 + i];
        }
        CHECK(s1 < s2);
        OK(sesphr_srs_consistency_proof(srs, s1, s2, &proof));
        OK(sesphr_verify_consistency(sesphr_buffer_data(cp1), sesphr_buffer_len(cp1), sesphr_buffer_data(cp2),
                                     sesphr_buffer_len(cp2), sesphr_buffer_data(proof), sesphr_buffer_len(proof),
                                     key, sizeof key));
        EXPECT(sesphr_verify_consistency(sesphr_buffer_data(cp2), sesphr_buffer_len(cp2), sesphr_buffer_data(cp1),
                                         sesphr_buffer_len(cp1), sesphr_buffer_data(proof),
                                         sesphr_buffer_len(proof), key, sizeof key),
               SESPHR_RESULT_INVALID_LOG_PROOF);
        EXPECT(sesphr_srs_consistency_proof(srs, s2, s1, &proof), SESPHR_RESULT_INVALID_LOG_PROOF);
        sesphr_buffer_free(report);
        sesphr_buffer_free(cp1);
        sesphr_buffer_free(cp2);
        sesphr_buffer_free(proof);
    }

    /* Removing a user revokes everything of theirs. */
    OK(sesphr_srs_remove_user(srs, S("dr-house"), S("officer-1"), S("admin"), S("left the hospital")));
    EXPECT(read_as(&w, "dr-house", w.doctor, old_lab, ""), SESPHR_RESULT_DENIED_NOT_REGISTERED);
    EXPECT(sesphr_srs_remove_user(srs, S("dr-house"), S("officer-1"), S("admin"), S("again")),
           SESPHR_RESULT_USER_REMOVED);
    {
        uint64_t checked = 0;
        OK(sesphr_srs_verify_consent(srs, &checked));
        CHECK(checked >= 4);
    }

    /* The audit chain verifies and exports as JSON lines. */
    OK(sesphr_srs_verify_audit(srs, &entries));
    CHECK(entries >= 15);
    OK(sesphr_srs_export_audit(srs, &audit));
    {
        size_t i, lines = 0;
        const uint8_t *d = sesphr_buffer_data(audit);
        for (i = 0; i < sesphr_buffer_len(audit); i++) lines += d[i] == '\n';
        CHECK(lines == entries);
        CHECK(sesphr_buffer_len(audit) > 0 && d[0] == '{');
    }
    sesphr_buffer_free(audit);
    sesphr_buffer_free(old_med);
    sesphr_buffer_free(old_lab);
    sesphr_buffer_free(new_lab);
    w.srs = NULL; /* owned by the caller */
    world_free(&w);
}

/* ------------------------------------------------------------- consent */

static int buf_has(const sesphr_buffer *b, const char *needle)
{
    size_t n = strlen(needle), i;
    const uint8_t *d = sesphr_buffer_data(b);
    for (i = 0; i + n <= sesphr_buffer_len(b); i++)
        if (memcmp(d + i, needle, n) == 0) return 1;
    return 0;
}

static sesphr_result read_for(struct world *w, const char *user, sesphr_keypair *kp, const sesphr_buffer *sealed,
                              uint32_t purpose, const char *justification)
{
    sesphr_buffer *header = NULL, *rc = NULL, *pt = NULL;
    sesphr_result r;
    OK(sesphr_portion_header(sesphr_buffer_data(sealed), sesphr_buffer_len(sealed), &header));
    r = sesphr_srs_reencrypt(w->srs, S(user), sesphr_buffer_data(header), sesphr_buffer_len(header), purpose,
                             (const uint8_t *)justification, justification ? strlen(justification) : 0, 0, &rc);
    if (r == SESPHR_RESULT_OK)
        OK(sesphr_open_as_delegatee(kp, sesphr_buffer_data(sealed), sesphr_buffer_len(sealed),
                                    sesphr_buffer_data(rc), sesphr_buffer_len(rc), &pt));
    sesphr_buffer_free(header);
    sesphr_buffer_free(rc);
    sesphr_buffer_free(pt);
    return r;
}

/* Hybrid (post-quantum) portions: the SRS's ML-KEM key, a hybrid portion
 * key, a hybrid user, sealing (whole and streamed), owner and delegatee
 * open, the SRS's re-wrap, rotation. */
static void test_hybrid(void)
{
    struct world w;
    sesphr_srs *srs = NULL;
    sesphr_buffer *srs_key = NULL, *hpk = NULL, *sealed = NULL, *pt = NULL, *rotated = NULL;
    sesphr_buffer *newer = NULL, *hpk2 = NULL;
    sesphr_keypair *hybrid = NULL, *restored = NULL;
    uint8_t pq[SESPHR_PQ_PUBLIC_KEY_LEN], pq2[SESPHR_PQ_PUBLIC_KEY_LEN], seed[SESPHR_PQ_SEED_LEN];
    uint8_t secret[SESPHR_SECRET_KEY_LEN], rid[SESPHR_RECORD_ID_LEN] = {9};
    size_t hlen = 0;
    OK(sesphr_srs_new_in_memory(STORAGE_KEY, sizeof STORAGE_KEY, NULL, 0, NULL, &srs));
    world_new(&w, srs);
    OK(sesphr_srs_pq_public_key(srs, &srs_key));
    CHECK(sesphr_buffer_len(srs_key) == 5 + 4 + SESPHR_PQ_PUBLIC_KEY_LEN);
    OK(sesphr_patient_keys_hybrid_portion_public_key(w.patient, S("lab"), 0, sesphr_buffer_data(srs_key),
                                                     sesphr_buffer_len(srs_key), &hpk));
    sealed = seal(hpk, 7, 1000, "HbA1c 5.4%");
    OK(sesphr_header_len(sesphr_buffer_data(sealed), SESPHR_HEADER_PREFIX_LEN, &hlen));
    CHECK(hlen > SESPHR_HEADER_MAX_LEN && hlen <= SESPHR_HYBRID_HEADER_MAX_LEN);
    OK(sesphr_open_as_owner(w.patient, sesphr_buffer_data(sealed), sesphr_buffer_len(sealed), &pt));
    CHECK(buf_eq(pt, S("HbA1c 5.4%")));
    sesphr_buffer_free(pt);
    pt = NULL;

    /* A hybrid user: without a registered ML-KEM key the SRS denies. */
    OK(sesphr_keypair_generate_hybrid(&hybrid));
    OK(register_user_kp(srs, "dr-cameron", "doctor", hybrid));
    grant(&w, "dr-cameron", hybrid, "lab", NULL, SESPHR_RESULT_OK);
    EXPECT(read_as(&w, "dr-cameron", hybrid, sealed, ""), SESPHR_RESULT_DENIED_NO_PQ_KEY);
    OK(sesphr_keypair_pq_public_key(hybrid, pq, sizeof pq));
    EXPECT(sesphr_keypair_pq_public_key(w.doctor, pq2, sizeof pq2), SESPHR_RESULT_PQ_KEY_MISSING);
    EXPECT(sesphr_keypair_pq_public_key(hybrid, pq2, sizeof pq2 - 1), SESPHR_RESULT_BUFFER_TOO_SMALL);
    EXPECT(sesphr_srs_register_pq_key(srs, S("dr-cameron"), pq, sizeof pq - 1), SESPHR_RESULT_INVALID_LENGTH);
    OK(sesphr_srs_register_pq_key(srs, S("dr-cameron"), pq, sizeof pq));
    EXPECT(sesphr_srs_register_pq_key(srs, S("nobody"), pq, sizeof pq), SESPHR_RESULT_UNKNOWN_USER);
    EXPECT(read_as(&w, "dr-cameron", hybrid, sealed, "HbA1c 5.4%"), SESPHR_RESULT_OK);

    /* Restored from its two secrets, the key pair reads it too; the
     * ristretto255 half alone does not (PQ_KEY_MISSING). */
    OK(sesphr_keypair_secret_key(hybrid, secret, sizeof secret));
    OK(sesphr_keypair_pq_seed(hybrid, seed, sizeof seed));
    OK(sesphr_keypair_from_secret_hybrid(secret, sizeof secret, seed, sizeof seed, &restored));
    EXPECT(read_as(&w, "dr-cameron", restored, sealed, "HbA1c 5.4%"), SESPHR_RESULT_OK);
    sesphr_keypair_free(restored);
    restored = NULL;
    EXPECT(sesphr_keypair_from_secret_hybrid(secret, sizeof secret, seed, sizeof seed - 1, &restored),
           SESPHR_RESULT_INVALID_LENGTH);
    CHECK(restored == NULL);
    OK(sesphr_keypair_from_secret(secret, sizeof secret, &restored));
    {
        sesphr_buffer *header = NULL, *rc = NULL;
        OK(sesphr_portion_header(sesphr_buffer_data(sealed), sesphr_buffer_len(sealed), &header));
        OK(sesphr_srs_reencrypt(srs, S("dr-cameron"), sesphr_buffer_data(header), sesphr_buffer_len(header),
                                SESPHR_PURPOSE_TREATMENT, NULL, 0, 0, &rc));
        EXPECT(sesphr_open_as_delegatee(restored, sesphr_buffer_data(sealed), sesphr_buffer_len(sealed),
                                        sesphr_buffer_data(rc), sesphr_buffer_len(rc), &pt),
               SESPHR_RESULT_PQ_KEY_MISSING);
        CHECK(pt == NULL);
        sesphr_buffer_free(header);
        sesphr_buffer_free(rc);
    }
    sesphr_keypair_free(restored);
    memset(seed, 0, sizeof seed);
    memset(secret, 0, sizeof secret);

    /* Streamed sealing to a hybrid key: the bound covers the longer header. */
    {
        sesphr_sealer *sl = NULL;
        size_t cap = sesphr_stream_output_bound(10), n = 0, total = 0;
        uint8_t *out = malloc(cap * 2);
        OK(sesphr_sealer_new(sesphr_buffer_data(hpk), sesphr_buffer_len(hpk), rid, sizeof rid, 1000, &sl));
        OK(sesphr_sealer_update_into(sl, (const uint8_t *)"LDL 96 mg", 10, out, cap, &n));
        total += n;
        OK(sesphr_sealer_finish_into(sl, out + total, cap, &n));
        total += n;
        sesphr_sealer_free(sl);
        OK(sesphr_open_as_owner(w.patient, out, total, &pt));
        CHECK(buf_eq(pt, (const uint8_t *)"LDL 96 mg", 10));
        sesphr_buffer_free(pt);
        pt = NULL;
        free(out);
    }

    /* A grant naming the user's ML-KEM key: another key registered under
     * the name is refused; the named one serves. */
    {
        sesphr_keypair *wilson = NULL, *other = NULL;
        uint8_t wpq[SESPHR_PQ_PUBLIC_KEY_LEN], opq[SESPHR_PQ_PUBLIC_KEY_LEN];
        sesphr_grant_options g = SESPHR_GRANT_OPTIONS_INIT;
        OK(sesphr_keypair_generate_hybrid(&wilson));
        OK(sesphr_keypair_generate_hybrid(&other));
        OK(sesphr_keypair_pq_public_key(wilson, wpq, sizeof wpq));
        OK(sesphr_keypair_pq_public_key(other, opq, sizeof opq));
        OK(register_user_kp(srs, "dr-wilson", "doctor", wilson));
        g.user_pq_key = wpq;
        EXPECT(grant_as(srs, w.patient, "dr-wilson", wilson, "lab", &g), SESPHR_RESULT_OK);
        OK(sesphr_srs_register_pq_key(srs, S("dr-wilson"), opq, sizeof opq));
        EXPECT(read_as(&w, "dr-wilson", wilson, sealed, ""), SESPHR_RESULT_DENIED_PQ_KEY_NOT_GRANTED);
        OK(sesphr_srs_register_pq_key(srs, S("dr-wilson"), wpq, sizeof wpq));
        EXPECT(read_as(&w, "dr-wilson", wilson, sealed, "HbA1c 5.4%"), SESPHR_RESULT_OK);
        /* The size from before `user_pq_key`: the field is not read. */
        g.struct_size = offsetof(sesphr_grant_options, user_pq_key);
        g.user_pq_key = (const uint8_t *)"not read";
        EXPECT(grant_as(srs, w.patient, "dr-wilson", wilson, "lab", &g), SESPHR_RESULT_OK);
        OK(sesphr_srs_register_pq_key(srs, S("dr-wilson"), opq, sizeof opq));
        {
            /* dr-wilson's ristretto255 key with the other ML-KEM key. */
            sesphr_keypair *mixed = NULL;
            uint8_t sk[SESPHR_SECRET_KEY_LEN], oseed[SESPHR_PQ_SEED_LEN];
            OK(sesphr_keypair_secret_key(wilson, sk, sizeof sk));
            OK(sesphr_keypair_pq_seed(other, oseed, sizeof oseed));
            OK(sesphr_keypair_from_secret_hybrid(sk, sizeof sk, oseed, sizeof oseed, &mixed));
            EXPECT(read_as(&w, "dr-wilson", mixed, sealed, "HbA1c 5.4%"), SESPHR_RESULT_OK);
            memset(sk, 0, sizeof sk);
            memset(oseed, 0, sizeof oseed);
            sesphr_keypair_free(mixed);
        }
        sesphr_keypair_free(wilson);
        sesphr_keypair_free(other);
    }

    /* Rotation: new headers go to version 2; the old header still serves. */
    OK(sesphr_srs_rotate_pq_key(srs, &rotated));
    CHECK(sesphr_buffer_len(rotated) == sesphr_buffer_len(srs_key));
    CHECK(memcmp(sesphr_buffer_data(rotated) + 9, sesphr_buffer_data(srs_key) + 9, SESPHR_PQ_PUBLIC_KEY_LEN) != 0);
    OK(sesphr_patient_keys_hybrid_portion_public_key(w.patient, S("lab"), 0, sesphr_buffer_data(rotated),
                                                     sesphr_buffer_len(rotated), &hpk2));
    newer = seal(hpk2, 8, 1000, "eGFR 58");
    EXPECT(read_as(&w, "dr-cameron", hybrid, newer, "eGFR 58"), SESPHR_RESULT_OK);
    EXPECT(read_as(&w, "dr-cameron", hybrid, sealed, "HbA1c 5.4%"), SESPHR_RESULT_OK);
    /* Revoked: neither part. */
    OK(revoke_as(srs, w.patient, "lab", "dr-cameron"));
    EXPECT(read_as(&w, "dr-cameron", hybrid, newer, ""), SESPHR_RESULT_DENIED_REVOKED);
    /* A malformed SRS key is refused. */
    EXPECT(sesphr_patient_keys_hybrid_portion_public_key(w.patient, S("lab"), 0, sesphr_buffer_data(srs_key),
                                                         sesphr_buffer_len(srs_key) - 1, &hpk2),
           SESPHR_RESULT_INVALID_LENGTH);
    {
        uint64_t entries = 0;
        OK(sesphr_srs_verify_audit(srs, &entries));
        CHECK(entries > 10);
    }

    sesphr_buffer_free(srs_key);
    sesphr_buffer_free(hpk);
    sesphr_buffer_free(hpk2);
    sesphr_buffer_free(sealed);
    sesphr_buffer_free(newer);
    sesphr_buffer_free(rotated);
    sesphr_keypair_free(hybrid);
    world_free(&w);
}

static void test_consent(void)
{
    struct world w;
    sesphr_srs *srs = NULL;
    sesphr_patient_keys *forger = NULL;
    sesphr_keypair *er = NULL;
    sesphr_buffer *med = NULL, *json = NULL, *sig = NULL, *receipt = NULL;
    uint8_t request[SESPHR_REQUEST_ID_LEN], consent_pk[32];
    sesphr_grant_options o;
    uint64_t checked = 0;
    OK(sesphr_srs_new_in_memory(STORAGE_KEY, sizeof STORAGE_KEY, NULL, 0, NULL, &srs));
    world_new(&w, srs);
    med = seal(w.ppk_medical, 4, 1000, "diagnosis: asthma");
    OK(sesphr_patient_keys_consent_public_key(w.patient, consent_pk, sizeof consent_pk));

    /* A grant signed by anyone but the patient is refused. */
    OK(sesphr_patient_keys_generate(S("patient-0042"), &forger));
    EXPECT(grant_as(srs, forger, "dr-house", w.doctor, "medical", NULL), SESPHR_RESULT_INVALID_SIGNATURE);
    EXPECT(read_as(&w, "dr-house", w.doctor, med, ""), SESPHR_RESULT_DENIED_NOT_GRANTED);

    /* A request, refused by a signed refusal, then asked again and granted. */
    OK(sesphr_srs_request_access(srs, S("researcher-17"), S("patient-0042"), S("medical"), SESPHR_PURPOSE_RESEARCH,
                                 S("cohort study of asthma"), request, sizeof request));
    OK(sesphr_srs_pending_requests_json(srs, S("patient-0042"), &json));
    CHECK(buf_has(json, "\"researcher-17\"") && buf_has(json, "\"research\""));
    sesphr_buffer_free(json);
    OK(sesphr_sign_refusal(w.patient, request, sizeof request, S("not for research"), &sig));
    OK(sesphr_srs_refuse_request(srs, sesphr_buffer_data(sig), sesphr_buffer_len(sig)));
    EXPECT(sesphr_srs_refuse_request(srs, sesphr_buffer_data(sig), sesphr_buffer_len(sig)),
           SESPHR_RESULT_REQUEST_ANSWERED);
    sesphr_buffer_free(sig);
    OK(sesphr_srs_pending_requests_json(srs, S("patient-0042"), &json));
    CHECK(sesphr_buffer_len(json) == 2);
    sesphr_buffer_free(json);
    OK(sesphr_srs_request_access(srs, S("researcher-17"), S("patient-0042"), S("medical"), SESPHR_PURPOSE_RESEARCH,
                                 S("cohort study, consented"), request, sizeof request));
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.request = request;
    OK(grant_as(srs, w.patient, "researcher-17", w.researcher, "medical", &o));
    EXPECT(grant_as(srs, w.patient, "researcher-17", w.researcher, "medical", &o), SESPHR_RESULT_REQUEST_ANSWERED);
    EXPECT(read_for(&w, "researcher-17", w.researcher, med, SESPHR_PURPOSE_RESEARCH, NULL), SESPHR_RESULT_OK);

    /* Break-glass: served only for an emergency with a justification, and flagged. */
    OK(sesphr_keypair_generate(&er));
    OK(register_user_kp(srs, "dr-er", "emergency-physician", er));
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.emergency_role = (const uint8_t *)"doctor";
    o.emergency_role_len = 6;
    EXPECT(grant_as(srs, w.patient, "dr-er", er, "medical", &o), SESPHR_RESULT_ROLE_MISMATCH);
    o.emergency_role = (const uint8_t *)"emergency-physician";
    o.emergency_role_len = strlen("emergency-physician");
    OK(grant_as(srs, w.patient, "dr-er", er, "medical", &o));
    EXPECT(read_for(&w, "dr-er", er, med, SESPHR_PURPOSE_TREATMENT, NULL), SESPHR_RESULT_DENIED_EMERGENCY_ONLY);
    EXPECT(read_for(&w, "dr-er", er, med, SESPHR_PURPOSE_EMERGENCY, NULL), SESPHR_RESULT_DENIED_EMERGENCY_ONLY);
    EXPECT(read_for(&w, "dr-er", er, med, SESPHR_PURPOSE_EMERGENCY, "unconscious, allergy check"), SESPHR_RESULT_OK);
    OK(sesphr_srs_emergency_accesses_json(srs, S("patient-0042"), &json));
    CHECK(buf_has(json, "\"dr-er\"") && buf_has(json, "\"emergency\":true") && !buf_has(json, "researcher-17"));
    sesphr_buffer_free(json);
    OK(sesphr_srs_disclosures_json(srs, S("patient-0042"), 0, UINT64_MAX, &json));
    CHECK(buf_has(json, "\"count\":2") && buf_has(json, "\"purpose\":\"research\""));
    sesphr_buffer_free(json);

    /* A signed revocation works once; the same bytes again are a replay. */
    OK(sesphr_sign_revocation(w.patient, S("medical"), S("researcher-17"), &sig));
    OK(sesphr_srs_revoke(srs, sesphr_buffer_data(sig), sesphr_buffer_len(sig), NULL));
    EXPECT(sesphr_srs_revoke(srs, sesphr_buffer_data(sig), sesphr_buffer_len(sig), NULL), SESPHR_RESULT_REPLAYED);
    sesphr_buffer_free(sig);
    /* An administrative revocation names its actor and still gets a receipt. */
    OK(sesphr_srs_revoke_as(srs, S("officer-1"), S("admin"), S("incident 42"), S("patient-0042"), S("medical"),
                            S("dr-er"), &receipt));
    {
        uint8_t key[32];
        OK(sesphr_srs_verifying_key(srs, key, sizeof key));
        OK(sesphr_revocation_receipt_verify(sesphr_buffer_data(receipt), sesphr_buffer_len(receipt), key, 32));
        EXPECT(sesphr_revocation_receipt_verify(sesphr_buffer_data(receipt), sesphr_buffer_len(receipt), consent_pk, 32),
               SESPHR_RESULT_INVALID_SIGNATURE);
    }
    sesphr_buffer_free(receipt);
    OK(sesphr_srs_verify_consent(srs, &checked));
    CHECK(checked == 4); /* two grants, one revocation, one refusal */

    sesphr_keypair_free(er);
    sesphr_patient_keys_free(forger);
    sesphr_buffer_free(med);
    world_free(&w);
}

/* ------------------------------------------------------------- streams */

static void test_streams(void)
{
    enum { LEN = 200000, PIECE = 7777 };
    uint8_t *plain = malloc(LEN), *stored = NULL, rid[SESPHR_RECORD_ID_LEN] = {9};
    size_t stored_len = 0, i, header_len = 0, got_len = 0;
    uint8_t *got = malloc(LEN);
    sesphr_patient_keys *patient = NULL;
    sesphr_buffer *ppk = NULL, *chunk = NULL;
    sesphr_sealer *sealer = NULL;
    sesphr_opener *opener = NULL;
    for (i = 0; i < LEN; i++) plain[i] = (uint8_t)(i * 31 + 7);
    stored = malloc(LEN + 4096);

    OK(sesphr_patient_keys_generate(S("patient-imaging"), &patient));
    OK(sesphr_patient_keys_portion_public_key(patient, S("imaging"), 0, &ppk));
    OK(sesphr_sealer_new(sesphr_buffer_data(ppk), sesphr_buffer_len(ppk), rid, sizeof rid, 1234, &sealer));
    for (i = 0; i < LEN; i += PIECE) {
        size_t n = LEN - i < PIECE ? LEN - i : PIECE;
        OK(sesphr_sealer_update(sealer, plain + i, n, &chunk));
        memcpy(stored + stored_len, sesphr_buffer_data(chunk), sesphr_buffer_len(chunk));
        stored_len += sesphr_buffer_len(chunk);
        sesphr_buffer_free(chunk);
    }
    OK(sesphr_sealer_finish(sealer, &chunk));
    memcpy(stored + stored_len, sesphr_buffer_data(chunk), sesphr_buffer_len(chunk));
    stored_len += sesphr_buffer_len(chunk);
    sesphr_buffer_free(chunk);
    chunk = NULL;
    EXPECT(sesphr_sealer_update(sealer, plain, 1, &chunk), SESPHR_RESULT_INVALID_STATE);
    EXPECT(sesphr_sealer_finish(sealer, &chunk), SESPHR_RESULT_INVALID_STATE);
    CHECK(chunk == NULL);
    sesphr_sealer_free(sealer);

    /* In memory, the streamed portion opens. */
    OK(sesphr_open_as_owner(patient, stored, stored_len, &chunk));
    CHECK(buf_eq(chunk, plain, LEN));
    sesphr_buffer_free(chunk);

    /* As a stream: header length from a prefix, then the body in odd pieces. */
    OK(sesphr_header_len(stored, SESPHR_HEADER_PREFIX_LEN, &header_len));
    OK(sesphr_header_len(stored, 66, &header_len)); /* classical: 66 bytes are enough */
    EXPECT(sesphr_header_len(stored, 65, &header_len), SESPHR_RESULT_INVALID_LENGTH);
    OK(sesphr_opener_new_owner(patient, stored, header_len, &opener));
    for (i = header_len; i < stored_len; i += 5000) {
        size_t n = stored_len - i < 5000 ? stored_len - i : 5000;
        OK(sesphr_opener_update(opener, stored + i, n, &chunk));
        memcpy(got + got_len, sesphr_buffer_data(chunk), sesphr_buffer_len(chunk));
        got_len += sesphr_buffer_len(chunk);
        sesphr_buffer_free(chunk);
    }
    OK(sesphr_opener_finish(opener, &chunk));
    memcpy(got + got_len, sesphr_buffer_data(chunk), sesphr_buffer_len(chunk));
    got_len += sesphr_buffer_len(chunk);
    sesphr_buffer_free(chunk);
    CHECK(got_len == LEN && memcmp(got, plain, LEN) == 0);
    EXPECT(sesphr_opener_finish(opener, &chunk), SESPHR_RESULT_INVALID_STATE);
    sesphr_opener_free(opener);

    /* Truncated: finish fails. Corrupted: update fails, and stays failed. */
    OK(sesphr_opener_new_owner(patient, stored, header_len, &opener));
    OK(sesphr_opener_update(opener, stored + header_len, stored_len - header_len - 20000, &chunk));
    sesphr_buffer_free(chunk);
    chunk = NULL;
    EXPECT(sesphr_opener_finish(opener, &chunk), SESPHR_RESULT_DECRYPTION_FAILED);
    CHECK(chunk == NULL);
    sesphr_opener_free(opener);
    stored[header_len + 100] ^= 1;
    OK(sesphr_opener_new_owner(patient, stored, header_len, &opener));
    EXPECT(sesphr_opener_update(opener, stored + header_len, stored_len - header_len, &chunk),
           SESPHR_RESULT_DECRYPTION_FAILED);
    EXPECT(sesphr_opener_finish(opener, &chunk), SESPHR_RESULT_DECRYPTION_FAILED);
    sesphr_opener_free(opener);
    EXPECT(sesphr_open_as_owner(patient, stored, stored_len, &chunk), SESPHR_RESULT_DECRYPTION_FAILED);

    /* A sealer freed before finish leaks nothing. */
    OK(sesphr_sealer_new(sesphr_buffer_data(ppk), sesphr_buffer_len(ppk), rid, sizeof rid, 1, &sealer));
    OK(sesphr_sealer_update(sealer, plain, 1000, &chunk));
    sesphr_buffer_free(chunk);
    sesphr_sealer_free(sealer);

    /* Into the caller's memory: sealed straight into `stored`, opened into
     * one reused buffer; a buffer under the bound consumes nothing. */
    {
        size_t room = sesphr_stream_output_bound(PIECE), n = 12345;
        uint8_t *out = malloc(room);
        free(stored);
        stored = malloc(LEN + room + 4096);
        stored_len = 0;
        OK(sesphr_sealer_new(sesphr_buffer_data(ppk), sesphr_buffer_len(ppk), rid, sizeof rid, 1234, &sealer));
        EXPECT(sesphr_sealer_update_into(sealer, plain, PIECE, stored, room - 1, &n), SESPHR_RESULT_BUFFER_TOO_SMALL);
        CHECK(n == 12345);
        EXPECT(sesphr_sealer_update_into(sealer, plain, PIECE, NULL, room, &n), SESPHR_RESULT_NULL_PARAMETER);
        for (i = 0; i < LEN; i += PIECE) {
            size_t len = LEN - i < PIECE ? LEN - i : PIECE;
            OK(sesphr_sealer_update_into(sealer, plain + i, len, stored + stored_len, room, &n));
            stored_len += n;
        }
        OK(sesphr_sealer_finish_into(sealer, stored + stored_len, room, &n));
        stored_len += n;
        EXPECT(sesphr_sealer_finish_into(sealer, stored + stored_len, room, &n), SESPHR_RESULT_INVALID_STATE);
        sesphr_sealer_free(sealer);
        OK(sesphr_open_as_owner(patient, stored, stored_len, &chunk));
        CHECK(buf_eq(chunk, plain, LEN));
        sesphr_buffer_free(chunk);

        OK(sesphr_header_len(stored, SESPHR_HEADER_PREFIX_LEN, &header_len));
        OK(sesphr_opener_new_owner(patient, stored, header_len, &opener));
        got_len = 0;
        for (i = header_len; i < stored_len; i += PIECE) {
            size_t len = stored_len - i < PIECE ? stored_len - i : PIECE;
            OK(sesphr_opener_update_into(opener, stored + i, len, out, room, &n));
            memcpy(got + got_len, out, n);
            got_len += n;
        }
        OK(sesphr_opener_finish_into(opener, out, room, &n));
        memcpy(got + got_len, out, n);
        got_len += n;
        CHECK(got_len == LEN && memcmp(got, plain, LEN) == 0);
        sesphr_opener_free(opener);

        /* A flipped byte: nothing written, and the opener stays failed. */
        stored[header_len + 70000] ^= 1;
        OK(sesphr_opener_new_owner(patient, stored, header_len, &opener));
        n = 12345;
        /* 100,000 bytes in need more room than PIECE bytes in. */
        EXPECT(sesphr_opener_update_into(opener, stored + header_len, 100000, out, room, &n),
               SESPHR_RESULT_BUFFER_TOO_SMALL);
        CHECK(n == 12345);
        for (i = header_len; i < stored_len; i += PIECE) {
            size_t len = stored_len - i < PIECE ? stored_len - i : PIECE;
            sesphr_result r = sesphr_opener_update_into(opener, stored + i, len, out, room, &n);
            if (r != SESPHR_RESULT_OK) {
                CHECK(r == SESPHR_RESULT_DECRYPTION_FAILED);
                break;
            }
        }
        EXPECT(sesphr_opener_finish_into(opener, out, room, &n), SESPHR_RESULT_DECRYPTION_FAILED);
        sesphr_opener_free(opener);
        free(out);
    }

    sesphr_buffer_free(ppk);
    sesphr_patient_keys_free(patient);
    free(plain);
    free(got);
    free(stored);
}

/* --------------------------------------------------------- error paths */

/* Options structures: `struct_size` decides which fields are read. An
 * older (smaller) size at a field boundary gets the defaults for the fields
 * beyond it, whatever the memory there holds; 0, an unknown or a larger
 * size is STRUCT_SIZE and nothing is written. */
static void test_struct_sizes(void)
{
    struct world w;
    sesphr_srs *srs = NULL;
    uint64_t hour_ago = (uint64_t)time(NULL) - 3600;
    union {
        sesphr_srs_options o;
        unsigned char bytes[sizeof(sesphr_srs_options) + 16];
    } big;

    /* Zeroed without its size, too large, off a field boundary: refused. */
    sesphr_srs_options z;
    memset(&z, 0, sizeof z);
    EXPECT(sesphr_srs_new_in_memory(STORAGE_KEY, sizeof STORAGE_KEY, NULL, 0, &z, &srs),
           SESPHR_RESULT_STRUCT_SIZE);
    CHECK(srs == NULL);
    memset(&big, 0, sizeof big);
    big.o.struct_size = sizeof big.bytes;
    EXPECT(sesphr_srs_new_in_memory(STORAGE_KEY, sizeof STORAGE_KEY, NULL, 0, &big.o, &srs),
           SESPHR_RESULT_STRUCT_SIZE);
    z.struct_size = sizeof z - 1;
    EXPECT(sesphr_srs_new_in_memory(STORAGE_KEY, sizeof STORAGE_KEY, NULL, 0, &z, &srs),
           SESPHR_RESULT_STRUCT_SIZE);
    CHECK(srs == NULL);

    /* The whole structure: a maximum grant age of one second refuses a
     * grant signed an hour ago. */
    sesphr_srs_options o = SESPHR_SRS_OPTIONS_INIT;
    sesphr_grant_options g = SESPHR_GRANT_OPTIONS_INIT;
    o.grant_max_age = 1;
    OK(sesphr_srs_new_in_memory(STORAGE_KEY, sizeof STORAGE_KEY, NULL, 0, &o, &srs));
    world_new(&w, srs);
    g.issued_at = hour_ago;
    EXPECT(grant_as(srs, w.patient, "dr-house", w.doctor, "medical", &g), SESPHR_RESULT_GRANT_TOO_OLD);
    world_free(&w);

    /* The size of a header from before `grant_max_age`: the same bytes
     * there are not read, the default (seven days) applies. */
    o.struct_size = offsetof(sesphr_srs_options, grant_max_age);
    o.checkpoint_interval = 1;
    OK(sesphr_srs_new_in_memory(STORAGE_KEY, sizeof STORAGE_KEY, NULL, 0, &o, &srs));
    world_new(&w, srs);
    EXPECT(grant_as(srs, w.patient, "dr-house", w.doctor, "medical", &g), SESPHR_RESULT_OK);

    /* The 0.2 size of sesphr_srs_options (before `no_follow`) still opens. */
    {
        sesphr_srs *older = NULL;
        sesphr_srs_options o2 = SESPHR_SRS_OPTIONS_INIT;
        o2.struct_size = offsetof(sesphr_srs_options, no_follow);
        o2.no_follow = 7;
        OK(sesphr_srs_new_in_memory(STORAGE_KEY, sizeof STORAGE_KEY, NULL, 0, &o2, &older));
        sesphr_srs_free(older);
    }

    /* Grant options alike: without `issued_at`, the grant is dated now. */
    g.issued_at = 5;
    EXPECT(grant_as(srs, w.patient, "researcher-17", w.researcher, "lab", &g), SESPHR_RESULT_GRANT_TOO_OLD);
    g.struct_size = offsetof(sesphr_grant_options, issued_at);
    EXPECT(grant_as(srs, w.patient, "researcher-17", w.researcher, "lab", &g), SESPHR_RESULT_OK);
    g.struct_size = 0;
    EXPECT(grant_as(srs, w.patient, "researcher-17", w.researcher, "lab", &g), SESPHR_RESULT_STRUCT_SIZE);
    g.struct_size = sizeof g + 8;
    EXPECT(grant_as(srs, w.patient, "researcher-17", w.researcher, "lab", &g), SESPHR_RESULT_STRUCT_SIZE);

    /* One NULL rule: NULL with a length is NULL_PARAMETER, never "absent". */
    g = (sesphr_grant_options)SESPHR_GRANT_OPTIONS_INIT;
    g.emergency_role = NULL;
    g.emergency_role_len = 6;
    EXPECT(grant_as(srs, w.patient, "researcher-17", w.researcher, "lab", &g), SESPHR_RESULT_NULL_PARAMETER);
    {
        sesphr_buffer *sealed = seal(w.ppk_medical, 9, 1000, "x"), *header = NULL, *rc = NULL;
        OK(sesphr_portion_header(sesphr_buffer_data(sealed), sesphr_buffer_len(sealed), &header));
        EXPECT(sesphr_srs_reencrypt(srs, S("dr-house"), sesphr_buffer_data(header), sesphr_buffer_len(header),
                                    SESPHR_PURPOSE_TREATMENT, NULL, 9, 0, &rc),
               SESPHR_RESULT_NULL_PARAMETER);
        CHECK(rc == NULL);
        CHECK(strstr(sesphr_last_error_detail(), "`justification` is NULL") != NULL);
        /* An empty, an over-long and a non-UTF-8 justification: MALFORMED,
         * and the detail names the parameter. */
        {
            static char long_text[1026];
            memset(long_text, 'j', 1025);
            EXPECT(sesphr_srs_reencrypt(srs, S("dr-house"), sesphr_buffer_data(header), sesphr_buffer_len(header),
                                        SESPHR_PURPOSE_TREATMENT, (const uint8_t *)"", 0, 0, &rc),
                   SESPHR_RESULT_MALFORMED);
            CHECK(strstr(sesphr_last_error_detail(), "`justification`: ") != NULL);
            EXPECT(sesphr_srs_reencrypt(srs, S("dr-house"), sesphr_buffer_data(header), sesphr_buffer_len(header),
                                        SESPHR_PURPOSE_TREATMENT, S(long_text), 0, &rc),
                   SESPHR_RESULT_MALFORMED);
            CHECK(strstr(sesphr_last_error_detail(), "`justification`: ") != NULL);
            EXPECT(sesphr_srs_reencrypt(srs, S("dr-house"), sesphr_buffer_data(header), sesphr_buffer_len(header),
                                        SESPHR_PURPOSE_TREATMENT, S("\xff\xfe"), 0, &rc),
                   SESPHR_RESULT_MALFORMED);
            CHECK(strstr(sesphr_last_error_detail(), "`justification` is not UTF-8") != NULL);
            EXPECT(sesphr_srs_reencrypt(srs, S("dr\x01house"), sesphr_buffer_data(header), sesphr_buffer_len(header),
                                        SESPHR_PURPOSE_TREATMENT, NULL, 0, 0, &rc),
                   SESPHR_RESULT_INVALID_IDENTITY);
            CHECK(strstr(sesphr_last_error_detail(), "`user`: ") != NULL);
            CHECK(rc == NULL);
        }
        OK(sesphr_srs_reencrypt(srs, S("dr-house"), sesphr_buffer_data(header), sesphr_buffer_len(header),
                                SESPHR_PURPOSE_TREATMENT, NULL, 0, 0, &rc));
        sesphr_buffer_free(rc);
        sesphr_buffer_free(header);
        sesphr_buffer_free(sealed);
    }
    world_free(&w);
    srs = NULL;
    EXPECT(sesphr_srs_new_in_memory(STORAGE_KEY, sizeof STORAGE_KEY, NULL, 32, NULL, &srs),
           SESPHR_RESULT_NULL_PARAMETER);
    o = (sesphr_srs_options)SESPHR_SRS_OPTIONS_INIT;
    o.required_checkpoint = NULL;
    o.required_checkpoint_len = 5;
    EXPECT(sesphr_srs_new_in_memory(STORAGE_KEY, sizeof STORAGE_KEY, NULL, 0, &o, &srs),
           SESPHR_RESULT_NULL_PARAMETER);
    CHECK(srs == NULL);
}

static void test_errors(void)
{
    sesphr_srs *srs = NULL;
    sesphr_keypair *kp = NULL, *kp2 = NULL;
    sesphr_patient_keys *pk = NULL, *pk2 = NULL;
    sesphr_buffer *b = NULL, *ppk = NULL, *sealed = NULL, *hdr = NULL;
    sesphr_sealer *sealer = NULL;
    sesphr_opener *opener = NULL;
    uint8_t key[32], out[64], rid[16] = {1}, zeros[64] = {0}, garbage[300], proof[64];
    const uint8_t *ptrs[1];
    size_t lens[1], n = 0;
    uint64_t entries;
    sesphr_result results[1];
    sesphr_buffer *outs[1];
    size_t i;
    for (i = 0; i < sizeof garbage; i++) garbage[i] = (uint8_t)(i * 13 + 5);

    OK(sesphr_srs_new_in_memory(STORAGE_KEY, sizeof STORAGE_KEY, NULL, 0, NULL, &srs));
    OK(sesphr_keypair_generate(&kp));
    OK(sesphr_keypair_public_key(kp, key, sizeof key));
    OK(sesphr_patient_keys_generate(S("p"), &pk));
    OK(sesphr_patient_keys_portion_public_key(pk, S("lab"), 0, &ppk));
    sealed = seal(ppk, 1, 5, "x");
    OK(sesphr_portion_header(sesphr_buffer_data(sealed), sesphr_buffer_len(sealed), &hdr));

    /* NULL for each required pointer. */
    EXPECT(sesphr_keypair_generate(NULL), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_keypair_from_secret(NULL, 32, &kp2), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_keypair_from_secret(key, 32, NULL), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_keypair_public_key(NULL, out, 32), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_keypair_public_key(kp, NULL, 32), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_keypair_secret_key(NULL, out, 32), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_keypair_secret_key(kp, NULL, 32), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_patient_keys_generate(NULL, 3, &pk2), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_patient_keys_generate(S("p"), NULL), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_patient_keys_from_master(NULL, 1, zeros, 32, &pk2), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_patient_keys_from_master(S("p"), NULL, 32, &pk2), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_patient_keys_from_master(S("p"), zeros, 32, NULL), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_patient_keys_export(NULL, &b), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_patient_keys_export(pk, NULL), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_patient_keys_import(NULL, 5, &pk2), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_patient_keys_import(garbage, 40, NULL), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_patient_keys_master(NULL, out, 32), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_patient_keys_master(pk, NULL, 32), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_patient_keys_portion_public_key(NULL, S("lab"), 0, &b), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_patient_keys_portion_public_key(pk, NULL, 3, 0, &b), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_patient_keys_portion_public_key(pk, S("lab"), 0, NULL), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_rekey_generate(NULL, S("lab"), 0, key, 32, &b), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_rekey_generate(pk, NULL, 3, 0, key, 32, &b), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_rekey_generate(pk, S("lab"), 0, NULL, 32, &b), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_rekey_generate(pk, S("lab"), 0, key, 32, NULL), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_seal(NULL, 40, rid, 16, 0, zeros, 1, &b), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_seal(sesphr_buffer_data(ppk), sesphr_buffer_len(ppk), NULL, 16, 0, zeros, 1, &b), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_seal(sesphr_buffer_data(ppk), sesphr_buffer_len(ppk), rid, 16, 0, NULL, 1, &b), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_seal(sesphr_buffer_data(ppk), sesphr_buffer_len(ppk), rid, 16, 0, zeros, 1, NULL), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_header_len(NULL, 66, &n), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_header_len(sesphr_buffer_data(sealed), 66, NULL), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_portion_header(NULL, 10, &b), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_portion_header(sesphr_buffer_data(sealed), sesphr_buffer_len(sealed), NULL), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_open_as_owner(NULL, sesphr_buffer_data(sealed), sesphr_buffer_len(sealed), &b), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_open_as_owner(pk, NULL, 10, &b), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_open_as_owner(pk, sesphr_buffer_data(sealed), sesphr_buffer_len(sealed), NULL), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_open_as_delegatee(NULL, garbage, 10, garbage, 10, &b), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_open_as_delegatee(kp, NULL, 10, garbage, 10, &b), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_open_as_delegatee(kp, garbage, 10, NULL, 10, &b), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_open_as_delegatee(kp, garbage, 10, garbage, 10, NULL), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_sealer_new(NULL, 40, rid, 16, 0, &sealer), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_sealer_new(sesphr_buffer_data(ppk), sesphr_buffer_len(ppk), NULL, 16, 0, &sealer), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_sealer_new(sesphr_buffer_data(ppk), sesphr_buffer_len(ppk), rid, 16, 0, NULL), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_sealer_update(NULL, zeros, 1, &b), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_sealer_finish(NULL, &b), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_opener_new_owner(NULL, sesphr_buffer_data(hdr), sesphr_buffer_len(hdr), &opener), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_opener_new_owner(pk, NULL, 10, &opener), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_opener_new_owner(pk, sesphr_buffer_data(hdr), sesphr_buffer_len(hdr), NULL), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_opener_new_delegatee(NULL, garbage, 10, garbage, 10, &opener), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_opener_new_delegatee(kp, NULL, 10, garbage, 10, &opener), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_opener_new_delegatee(kp, garbage, 10, NULL, 10, &opener), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_opener_new_delegatee(kp, garbage, 10, garbage, 10, NULL), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_opener_update(NULL, zeros, 1, &b), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_opener_finish(NULL, &b), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_srs_open_sqlite(NULL, STORAGE_KEY, 32, NULL, 0, NULL, &srs), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_srs_new_in_memory(NULL, 32, NULL, 0, NULL, &srs), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_srs_new_in_memory(STORAGE_KEY, 32, NULL, 0, NULL, NULL), SESPHR_RESULT_NULL_PARAMETER);
    OK(sesphr_keypair_prove_possession(kp, S("u"), proof, sizeof proof));
    EXPECT(sesphr_srs_register_user(NULL, S("u"), S("doctor"), key, 32, proof, 64), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_srs_register_user(srs, NULL, 1, S("doctor"), key, 32, proof, 64), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_srs_register_user(srs, S("u"), NULL, 6, key, 32, proof, 64), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_srs_register_user(srs, S("u"), S("doctor"), NULL, 32, proof, 64), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_srs_register_user(srs, S("u"), S("doctor"), key, 32, NULL, 64), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_srs_remove_user(NULL, S("u"), S("a"), S("admin"), S("r")), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_srs_remove_user(srs, NULL, 1, S("a"), S("admin"), S("r")), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_srs_remove_user(srs, S("u"), NULL, 1, S("admin"), S("r")), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_srs_register_patient(NULL, garbage, 100), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_srs_register_patient(srs, NULL, 100), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_srs_add_portions(NULL, garbage, 100), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_srs_add_portions(srs, NULL, 100), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_srs_grant(NULL, garbage, 200, garbage, 165), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_srs_grant(srs, NULL, 200, garbage, 165), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_srs_grant(srs, garbage, 200, NULL, 165), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_srs_revoke(NULL, garbage, 100, NULL), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_srs_revoke(srs, NULL, 100, NULL), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_sign_grant(NULL, S("lab"), 0, S("u"), garbage, 165, NULL, &b), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_sign_grant(pk, S("lab"), 0, S("u"), garbage, 165, NULL, NULL), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_sign_revocation(NULL, S("lab"), S("u"), &b), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_sign_revocation(pk, S("lab"), S("u"), NULL), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_keypair_prove_possession(NULL, S("u"), proof, 64), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_keypair_prove_possession(kp, S("u"), proof, 63), SESPHR_RESULT_BUFFER_TOO_SMALL);
    EXPECT(sesphr_patient_keys_consent_public_key(pk, out, 31), SESPHR_RESULT_BUFFER_TOO_SMALL);
    EXPECT(sesphr_patient_registration(pk, NULL, lens, NULL, 1, &b), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_srs_reencrypt(NULL, S("u"), sesphr_buffer_data(hdr), sesphr_buffer_len(hdr), 1, NULL, 0, 0, &b), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_srs_reencrypt(srs, S("u"), NULL, 10, 1, NULL, 0, 0, &b), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_srs_reencrypt(srs, S("u"), sesphr_buffer_data(hdr), sesphr_buffer_len(hdr), 1, NULL, 0, 0, NULL), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_srs_reencrypt(srs, S("u"), sesphr_buffer_data(hdr), sesphr_buffer_len(hdr), 0, NULL, 0, 0, &b), SESPHR_RESULT_INVALID_ARGUMENT);
    EXPECT(sesphr_srs_reencrypt(srs, S("u"), sesphr_buffer_data(hdr), sesphr_buffer_len(hdr), 7, NULL, 0, 0, &b), SESPHR_RESULT_INVALID_ARGUMENT);
    ptrs[0] = sesphr_buffer_data(hdr); lens[0] = sesphr_buffer_len(hdr);
    EXPECT(sesphr_srs_reencrypt_batch(srs, S("u"), NULL, lens, 1, 1, NULL, 0, outs, results), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_srs_reencrypt_batch(srs, S("u"), ptrs, NULL, 1, 1, NULL, 0, outs, results), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_srs_reencrypt_batch(srs, S("u"), ptrs, lens, 1, 1, NULL, 0, NULL, results), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_srs_reencrypt_batch(srs, S("u"), ptrs, lens, 1, 1, NULL, 0, outs, NULL), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_srs_verify_audit(NULL, &entries), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_srs_verify_audit(srs, NULL), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_srs_export_audit(srs, NULL), SESPHR_RESULT_NULL_PARAMETER);
    EXPECT(sesphr_srs_issue_keys(srs, S("u"), 0, NULL), SESPHR_RESULT_NULL_PARAMETER);

    /* Zero, short and oversized lengths. */
    EXPECT(sesphr_keypair_from_secret(key, 0, &kp2), SESPHR_RESULT_INVALID_LENGTH);
    EXPECT(sesphr_keypair_from_secret(key, 31, &kp2), SESPHR_RESULT_INVALID_LENGTH);
    EXPECT(sesphr_keypair_from_secret(garbage, 33, &kp2), SESPHR_RESULT_INVALID_LENGTH);
    EXPECT(sesphr_keypair_from_secret(garbage, SIZE_MAX, &kp2), SESPHR_RESULT_INVALID_LENGTH);
    EXPECT(sesphr_keypair_from_secret(zeros, 32, &kp2), SESPHR_RESULT_ZERO_SCALAR);
    {
        uint8_t big[32];
        memset(big, 0xff, sizeof big);
        EXPECT(sesphr_keypair_from_secret(big, 32, &kp2), SESPHR_RESULT_NON_CANONICAL_SCALAR);
    }
    CHECK(kp2 == NULL);
    EXPECT(sesphr_keypair_public_key(kp, out, 31), SESPHR_RESULT_BUFFER_TOO_SMALL);
    EXPECT(sesphr_keypair_secret_key(kp, out, 0), SESPHR_RESULT_BUFFER_TOO_SMALL);
    EXPECT(sesphr_patient_keys_master(pk, out, 16), SESPHR_RESULT_BUFFER_TOO_SMALL);
    EXPECT(sesphr_patient_keys_generate(NULL, 0, &pk2), SESPHR_RESULT_INVALID_IDENTITY);
    EXPECT(sesphr_patient_keys_generate(garbage, 256, &pk2), SESPHR_RESULT_INVALID_IDENTITY);
    EXPECT(sesphr_patient_keys_generate((const uint8_t *)"\xff\xfe", 2, &pk2), SESPHR_RESULT_INVALID_IDENTITY);
    /* An embedded NUL or another control character: a C log would print it cut or garbled. */
    EXPECT(sesphr_patient_keys_generate((const uint8_t *)"dr\0evil", 7, &pk2), SESPHR_RESULT_INVALID_IDENTITY);
    EXPECT(sesphr_patient_keys_generate((const uint8_t *)"dr\nevil", 7, &pk2), SESPHR_RESULT_INVALID_IDENTITY);
    EXPECT(sesphr_patient_keys_generate((const uint8_t *)"dr\x1b[0m", 6, &pk2), SESPHR_RESULT_INVALID_IDENTITY);
    EXPECT(sesphr_patient_keys_from_master(S("p"), zeros, 31, &pk2), SESPHR_RESULT_INVALID_LENGTH);
    EXPECT(sesphr_patient_keys_portion_public_key(pk, S("Lab"), 0, &b), SESPHR_RESULT_INVALID_LABEL);
    EXPECT(sesphr_patient_keys_portion_public_key(pk, NULL, 0, 0, &b), SESPHR_RESULT_INVALID_LABEL);
    EXPECT(sesphr_rekey_generate(pk, S("lab"), 0, zeros, 32, &b), SESPHR_RESULT_IDENTITY_POINT);
    EXPECT(sesphr_rekey_generate(pk, S("lab"), 0, garbage, 32, &b), SESPHR_RESULT_NON_CANONICAL_POINT);
    EXPECT(sesphr_rekey_generate(pk, S("lab"), 0, key, 31, &b), SESPHR_RESULT_INVALID_LENGTH);
    EXPECT(sesphr_seal(sesphr_buffer_data(ppk), sesphr_buffer_len(ppk), rid, 15, 0, zeros, 1, &b), SESPHR_RESULT_INVALID_LENGTH);
    EXPECT(sesphr_seal(sesphr_buffer_data(ppk), sesphr_buffer_len(ppk) - 1, rid, 16, 0, zeros, 1, &b), SESPHR_RESULT_INVALID_LENGTH);
    EXPECT(sesphr_seal(garbage, 60, rid, 16, 0, zeros, 1, &b), SESPHR_RESULT_BAD_MAGIC);
    EXPECT(sesphr_seal(sesphr_buffer_data(ppk), sesphr_buffer_len(ppk), rid, 16, 0, zeros, SIZE_MAX, &b), SESPHR_RESULT_INVALID_LENGTH);
    CHECK(b == NULL);
    EXPECT(sesphr_open_as_owner(pk, garbage, sizeof garbage, &b), SESPHR_RESULT_BAD_MAGIC);
    EXPECT(sesphr_open_as_owner(pk, sesphr_buffer_data(sealed), 50, &b), SESPHR_RESULT_INVALID_LENGTH);
    EXPECT(sesphr_open_as_owner(pk, NULL, 0, &b), SESPHR_RESULT_INVALID_LENGTH);
    EXPECT(sesphr_header_len(garbage, 66, &n), SESPHR_RESULT_BAD_MAGIC);
    EXPECT(sesphr_srs_new_in_memory(STORAGE_KEY, 31, NULL, 0, NULL, &srs), SESPHR_RESULT_INVALID_LENGTH);
    EXPECT(sesphr_srs_new_in_memory(STORAGE_KEY, 32, zeros, 31, NULL, &srs), SESPHR_RESULT_INVALID_LENGTH);
    EXPECT(sesphr_opener_new_owner(pk, garbage, sizeof garbage, &opener), SESPHR_RESULT_BAD_MAGIC);
    CHECK(opener == NULL);

    /* Another patient's portion: the keys do not match. */
    OK(sesphr_patient_keys_generate(S("p2"), &pk2));
    EXPECT(sesphr_open_as_owner(pk2, sesphr_buffer_data(sealed), sesphr_buffer_len(sealed), &b), SESPHR_RESULT_KEY_MISMATCH);
    sesphr_patient_keys_free(pk2);
    pk2 = NULL;

    /* Export and import of patient keys round-trips; garbage is refused. */
    OK(sesphr_patient_keys_export(pk, &b));
    OK(sesphr_patient_keys_import(sesphr_buffer_data(b), sesphr_buffer_len(b), &pk2));
    sesphr_buffer_free(b);
    b = NULL;
    OK(sesphr_open_as_owner(pk2, sesphr_buffer_data(sealed), sesphr_buffer_len(sealed), &b));
    CHECK(buf_eq(b, S("x")));
    sesphr_buffer_free(b);
    b = NULL;
    sesphr_patient_keys_free(pk2);
    pk2 = NULL;
    EXPECT(sesphr_patient_keys_import(garbage, 40, &pk2), SESPHR_RESULT_BAD_MAGIC);

    /* SRS: unknown users, patients, labels; duplicates; bad roles; escrow off. */
    EXPECT(sesphr_srs_register_user(srs, S("u"), S("Doctor"), key, 32, proof, 64), SESPHR_RESULT_INVALID_ROLE);
    /* A proof for another identity (or another key) does not verify. */
    EXPECT(sesphr_srs_register_user(srs, S("u9"), S("nurse"), key, 32, proof, 64), SESPHR_RESULT_INVALID_SIGNATURE);
    OK(sesphr_srs_register_user(srs, S("u"), S("nurse"), key, 32, proof, 64));
    EXPECT(sesphr_srs_register_user(srs, S("u"), S("doctor"), key, 32, proof, 64), SESPHR_RESULT_ALREADY_REGISTERED);
    OK(sesphr_keypair_prove_possession(kp, S("u2"), proof, sizeof proof));
    EXPECT(sesphr_srs_register_user(srs, S("u2"), S("doctor"), key, 32, proof, 64), SESPHR_RESULT_KEY_IN_USE);
    {
        const char *labels[1] = {"lab"};
        sesphr_buffer *reg = registration(pk, labels, 1);
        OK(sesphr_srs_register_patient(srs, sesphr_buffer_data(reg), sesphr_buffer_len(reg)));
        EXPECT(sesphr_srs_register_patient(srs, sesphr_buffer_data(reg), sesphr_buffer_len(reg)),
               SESPHR_RESULT_ALREADY_REGISTERED);
        /* One flipped bit anywhere in the signed registration is refused. */
        memcpy(garbage, sesphr_buffer_data(reg), sesphr_buffer_len(reg));
        garbage[sesphr_buffer_len(reg) - 1] ^= 1;
        CHECK(sesphr_srs_register_patient(srs, garbage, sesphr_buffer_len(reg)) != SESPHR_RESULT_OK);
        EXPECT(sesphr_srs_register_patient(srs, garbage, 3), SESPHR_RESULT_INVALID_LENGTH);
        /* A patient registered with consent has a consent key already. */
        EXPECT(sesphr_srs_adopt_consent_key(srs, sesphr_buffer_data(reg), sesphr_buffer_len(reg)),
               SESPHR_RESULT_ALREADY_REGISTERED);
        sesphr_buffer_free(reg);
        for (i = 0; i < sizeof garbage; i++) garbage[i] = (uint8_t)(i * 13 + 5);
    }
    EXPECT(revoke_as(srs, pk, "xray", "u"), SESPHR_RESULT_UNKNOWN_PORTION);
    EXPECT(revoke_as(srs, pk, "lab", "nobody"), SESPHR_RESULT_UNKNOWN_USER);
    /* A signed revocation of a grant never made is recorded: it refuses
     * every older grant of the triple. An administrative one ends nothing. */
    OK(revoke_as(srs, pk, "lab", "u"));
    EXPECT(sesphr_srs_revoke_as(srs, S("officer-1"), S("admin"), S("incident 42"), S("p"), S("lab"), S("u"), &b),
           SESPHR_RESULT_NOT_GRANTED);
    CHECK(b == NULL);
    EXPECT(sesphr_srs_grant(srs, garbage, 200, garbage, 165), SESPHR_RESULT_BAD_MAGIC);
    EXPECT(sesphr_srs_issue_keys(srs, S("u"), 0, &kp2), SESPHR_RESULT_ESCROW_DISABLED);
    EXPECT(sesphr_srs_reencrypt(srs, S("u"), garbage, sizeof garbage, 1, NULL, 0, 0, &b), SESPHR_RESULT_BAD_MAGIC);
    EXPECT(sesphr_srs_reencrypt(srs, S("u"), sesphr_buffer_data(hdr), sesphr_buffer_len(hdr), 1, NULL, 0, 0, &b), SESPHR_RESULT_DENIED_NOT_GRANTED);
    EXPECT(sesphr_srs_reencrypt(srs, S("ghost"), sesphr_buffer_data(hdr), sesphr_buffer_len(hdr), 1, NULL, 0, 0, &b), SESPHR_RESULT_DENIED_NOT_REGISTERED);
    CHECK(b == NULL);
    OK(sesphr_srs_verify_audit(srs, &entries));
    /* Patient + portion, user, a revocation, two denials. */
    CHECK(entries == 6);
    (void)n;

    sesphr_buffer_free(hdr);
    sesphr_buffer_free(sealed);
    sesphr_buffer_free(ppk);
    sesphr_patient_keys_free(pk);
    sesphr_keypair_free(kp);
    sesphr_srs_free(srs);
}

/* ----------------------------------------------------- test vectors */

#define MAX_ENTRIES 48

struct vcase {
    char name[64];
    char keys[MAX_ENTRIES][32];
    char *values[MAX_ENTRIES];
    int n;
};

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Decodes hex into a fresh buffer; *len receives its length. */
static uint8_t *unhex(const char *s, size_t *len)
{
    size_t n = strlen(s) / 2, i;
    uint8_t *out = malloc(n ? n : 1);
    for (i = 0; i < n; i++) out[i] = (uint8_t)(hexval(s[2 * i]) * 16 + hexval(s[2 * i + 1]));
    *len = n;
    return out;
}

static const char *get(const struct vcase *c, const char *key)
{
    int i;
    for (i = 0; i < c->n; i++)
        if (strcmp(c->keys[i], key) == 0) return c->values[i];
    fprintf(stderr, "vector %s: missing %s\n", c->name, key);
    return "";
}

/* Threshold (2 of 3): the committed shares verify, node 1's answer is
 * reproduced exactly (by the share alone and by an SRS node holding it),
 * nodes 1 and 3 open the committed portion, and the combine errors. */
static void check_threshold_case(const struct vcase *c, const sesphr_keypair *user, const uint8_t *sealed,
                                 size_t sealed_len, const uint8_t *hdr, size_t hdr_len, const uint8_t *pt,
                                 size_t pt_len, const uint8_t *uid, size_t uid_len, const uint8_t *pub,
                                 size_t pub_len)
{
    static const char *share_keys[3] = {"key_share_1", "key_share_2", "key_share_3"};
    size_t cm_len, rc1_len, rc3_len, sg_len, reg_len, proof_len, share_len[3];
    uint8_t *cm = unhex(get(c, "share_commitments"), &cm_len);
    uint8_t *rc1 = unhex(get(c, "recapsule_share_1"), &rc1_len);
    uint8_t *rc3 = unhex(get(c, "recapsule_share_3_with_proof"), &rc3_len);
    uint8_t *sg = unhex(get(c, "signed_share_grant"), &sg_len);
    uint8_t *reg = unhex(get(c, "registration"), &reg_len);
    uint8_t *proof = unhex(get(c, "user_key_proof"), &proof_len);
    size_t ck_len;
    uint8_t *ck = unhex(get(c, "consent_public"), &ck_len);
    uint8_t *share[3];
    sesphr_buffer *b = NULL, *bad = NULL;
    sesphr_srs *node[3] = {NULL, NULL, NULL};
    uint8_t index = 0;
    int i;
    for (i = 0; i < 3; i++) {
        share[i] = unhex(get(c, share_keys[i]), &share_len[i]);
        OK(sesphr_share_verify(share[i], share_len[i], &index));
        CHECK(index == i + 1);
    }
    CHECK(rc1_len == SESPHR_RECAPSULE_SHARE_LEN && rc3_len == SESPHR_RECAPSULE_SHARE_WITH_PROOF_LEN);
    OK(sesphr_share_reencrypt(share[0], share_len[0], hdr, hdr_len, 0, &b));
    CHECK(buf_eq(b, rc1, rc1_len));
    sesphr_buffer_free(b);
    {
        const uint8_t *rcs[3] = {rc1, rc3, NULL};
        size_t lens[3] = {rc1_len, rc3_len, 0};
        uint8_t from[3] = {1, 3, 2};
        sesphr_result verdicts[3] = {SESPHR_RESULT_PANIC, SESPHR_RESULT_PANIC, SESPHR_RESULT_PANIC};
        uint8_t garbage[SESPHR_RECAPSULE_SHARE_WITH_PROOF_LEN];
        OK(sesphr_threshold_open(user, sg, sg_len, ck, ck_len, cm, cm_len, sealed, sealed_len, rcs, lens, NULL, 2, 0,
                                 &b, &bad, verdicts));
        CHECK(buf_eq(b, pt, pt_len));
        CHECK(sesphr_buffer_len(bad) == 0);
        CHECK(verdicts[0] == SESPHR_RESULT_OK && verdicts[1] == SESPHR_RESULT_OK);
        sesphr_buffer_free(b);
        sesphr_buffer_free(bad);
        /* Fully verified: node 1 gave no proof, so too few valid shares
         * remain; the verdicts say which and why. */
        EXPECT(sesphr_threshold_open(user, sg, sg_len, ck, ck_len, cm, cm_len, sealed, sealed_len, rcs, lens, from, 2,
                                     1, &b, NULL, verdicts),
               SESPHR_RESULT_TOO_FEW_SHARES);
        CHECK(verdicts[0] == SESPHR_RESULT_INVALID_RE_ENCRYPTION_PROOF && verdicts[1] == SESPHR_RESULT_OK);
        CHECK(strstr(sesphr_last_error_detail(), "share 0 (node 1): no proof") != NULL);
        EXPECT(sesphr_threshold_open(user, sg, sg_len, ck, ck_len, cm, cm_len, sealed, sealed_len, rcs, lens, NULL, 1,
                                     0, &b, NULL, NULL),
               SESPHR_RESULT_TOO_FEW_SHARES);
        /* Robust: a garbage answer from node 2 (node 3's bytes, one changed)
         * first, then the two good ones: the portion opens, node 2 is named. */
        memcpy(garbage, rc3, rc3_len);
        garbage[40] ^= 0x55;
        rcs[0] = garbage;
        lens[0] = rc3_len;
        rcs[1] = rc1;
        lens[1] = rc1_len;
        rcs[2] = rc3;
        lens[2] = rc3_len;
        from[0] = 2;
        from[1] = 1;
        from[2] = 3;
        OK(sesphr_threshold_open(user, sg, sg_len, ck, ck_len, cm, cm_len, sealed, sealed_len, rcs, lens, from, 3, 0,
                                 &b, &bad, verdicts));
        CHECK(buf_eq(b, pt, pt_len));
        CHECK(sesphr_buffer_len(bad) == 1 && sesphr_buffer_data(bad)[0] == 2);
        CHECK(verdicts[0] != SESPHR_RESULT_OK && verdicts[1] == SESPHR_RESULT_OK && verdicts[2] == SESPHR_RESULT_OK);
        sesphr_buffer_free(b);
        sesphr_buffer_free(bad);
        /* The same answer twice is set aside as a copy. */
        rcs[0] = rc1;
        lens[0] = rc1_len;
        EXPECT(sesphr_threshold_open(user, sg, sg_len, ck, ck_len, cm, cm_len, sealed, sealed_len, rcs, lens, NULL, 2,
                                     0, &b, NULL, verdicts),
               SESPHR_RESULT_TOO_FEW_SHARES);
        CHECK(verdicts[1] == SESPHR_RESULT_DUPLICATE_SHARE);
        EXPECT(sesphr_threshold_open(user, sg, sg_len, ck, ck_len, cm, cm_len, sealed, sealed_len, NULL, lens, NULL, 2,
                                     0, &b, NULL, NULL),
               SESPHR_RESULT_NULL_PARAMETER);
        /* Altered commitments fail the patient's proof; another consent key
         * fails the grant's signature. */
        rcs[0] = rc3;
        lens[0] = rc3_len;
        cm[cm_len - 40] ^= 1;
        EXPECT(sesphr_threshold_open(user, sg, sg_len, ck, ck_len, cm, cm_len, sealed, sealed_len, rcs, lens, NULL, 2,
                                     0, &b, NULL, NULL),
               SESPHR_RESULT_INVALID_COMMITMENTS);
        cm[cm_len - 40] ^= 1;
        ck[3] ^= 1;
        CHECK(sesphr_threshold_open(user, sg, sg_len, ck, ck_len, cm, cm_len, sealed, sealed_len, rcs, lens, NULL, 2, 0,
                                    &b, NULL, NULL) != SESPHR_RESULT_OK);
        ck[3] ^= 1;
        /* Streaming: the header, the answers (with proofs), then the body in
         * pieces of 7 bytes. Node 1's answer has no proof: set aside; with
         * node 3 alone too few remain. */
        {
            size_t header_len = 0;
            sesphr_opener *op = NULL;
            OK(sesphr_header_len(sealed, sealed_len, &header_len));
            rcs[0] = rc1;
            lens[0] = rc1_len;
            rcs[1] = rc3;
            lens[1] = rc3_len;
            EXPECT(sesphr_opener_new_threshold(user, sg, sg_len, ck, ck_len, cm, cm_len, sealed, header_len, rcs, lens,
                                               NULL, 2, &op, NULL, verdicts),
                   SESPHR_RESULT_TOO_FEW_SHARES);
            CHECK(op == NULL && verdicts[0] == SESPHR_RESULT_INVALID_RE_ENCRYPTION_PROOF);
            /* Node 3's answer twice over the wire (its proof holds) and a
             * garbage one: node 3 alone is one share of two. */
            rcs[0] = garbage;
            lens[0] = rc3_len;
            from[0] = 2;
            from[1] = 3;
            EXPECT(sesphr_opener_new_threshold(user, sg, sg_len, ck, ck_len, cm, cm_len, sealed, header_len, rcs, lens,
                                               from, 2, &op, NULL, verdicts),
                   SESPHR_RESULT_TOO_FEW_SHARES);
            CHECK(op == NULL && verdicts[0] != SESPHR_RESULT_OK && verdicts[1] == SESPHR_RESULT_OK);
        }
    }
    /* Three SRS nodes, each with its own store, holding one share each. */
    for (i = 0; i < 3; i++) {
        /* The committed split grant was signed long ago: no maximum age. */
        sesphr_srs_options o;
        memset(&o, 0, sizeof o);
        o.struct_size = sizeof o;
        o.grant_max_age = UINT64_MAX;
        OK(sesphr_srs_new_in_memory(STORAGE_KEY, sizeof STORAGE_KEY, NULL, 0, &o, &node[i]));
        OK(sesphr_srs_register_patient(node[i], reg, reg_len));
        OK(sesphr_srs_register_user(node[i], uid, uid_len, S("doctor"), pub, pub_len, proof, proof_len));
    }
    /* A share under the grant of the whole key: refused. */
    {
        size_t g_len;
        uint8_t *g = unhex(get(c, "signed_grant"), &g_len);
        EXPECT(sesphr_srs_grant_share(node[0], g, g_len, share[0], share_len[0]), SESPHR_RESULT_RE_KEY_MISMATCH);
        free(g);
    }
    for (i = 0; i < 3; i++) OK(sesphr_srs_grant_share(node[i], sg, sg_len, share[i], share_len[i]));
    OK(sesphr_srs_reencrypt(node[0], uid, uid_len, hdr, hdr_len, SESPHR_PURPOSE_TREATMENT, NULL, 0, 0, &b));
    CHECK(buf_eq(b, rc1, rc1_len));
    sesphr_buffer_free(b);
    {
        sesphr_buffer *r2 = NULL, *r3 = NULL;
        const uint8_t *rcs[2];
        size_t lens[2];
        OK(sesphr_srs_reencrypt(node[1], uid, uid_len, hdr, hdr_len, SESPHR_PURPOSE_TREATMENT, NULL, 0, 1, &r2));
        OK(sesphr_srs_reencrypt(node[2], uid, uid_len, hdr, hdr_len, SESPHR_PURPOSE_TREATMENT, NULL, 0, 1, &r3));
        rcs[0] = sesphr_buffer_data(r3);
        rcs[1] = sesphr_buffer_data(r2);
        lens[0] = sesphr_buffer_len(r3);
        lens[1] = sesphr_buffer_len(r2);
        OK(sesphr_threshold_open(user, sg, sg_len, ck, ck_len, cm, cm_len, sealed, sealed_len, rcs, lens, NULL, 2, 1,
                                 &b, NULL, NULL));
        CHECK(buf_eq(b, pt, pt_len));
        sesphr_buffer_free(b);
        /* Streaming from the nodes' proved answers, the body in pieces of
         * 7 bytes. */
        {
            size_t header_len = 0, off, got = 0;
            sesphr_opener *op = NULL;
            sesphr_buffer *chunk = NULL;
            uint8_t *plain = malloc(pt_len + 1);
            uint8_t from[2] = {3, 2};
            sesphr_result verdicts[2];
            OK(sesphr_header_len(sealed, sealed_len, &header_len));
            OK(sesphr_opener_new_threshold(user, sg, sg_len, ck, ck_len, cm, cm_len, sealed, header_len, rcs, lens,
                                           from, 2, &op, NULL, verdicts));
            CHECK(verdicts[0] == SESPHR_RESULT_OK && verdicts[1] == SESPHR_RESULT_OK);
            for (off = header_len; off < sealed_len; off += 7) {
                size_t n = sealed_len - off < 7 ? sealed_len - off : 7;
                OK(sesphr_opener_update(op, sealed + off, n, &chunk));
                memcpy(plain + got, sesphr_buffer_data(chunk), sesphr_buffer_len(chunk));
                got += sesphr_buffer_len(chunk);
                sesphr_buffer_free(chunk);
            }
            OK(sesphr_opener_finish(op, &chunk));
            memcpy(plain + got, sesphr_buffer_data(chunk), sesphr_buffer_len(chunk));
            got += sesphr_buffer_len(chunk);
            sesphr_buffer_free(chunk);
            CHECK(got == pt_len && memcmp(plain, pt, pt_len) == 0);
            sesphr_opener_free(op);
            free(plain);
        }
        sesphr_buffer_free(r2);
        sesphr_buffer_free(r3);
    }
    for (i = 0; i < 3; i++) {
        sesphr_srs_free(node[i]);
        free(share[i]);
    }
    free(cm); free(rc1); free(rc3); free(sg); free(reg); free(proof); free(ck);
}

/* A hybrid record under a 2-of-3 split: each node its own storage key (so
 * its own ML-KEM key), the post-quantum secret split among them; one node
 * lies about its share of it and is named; two honest nodes open. */
static void test_hybrid_threshold(void)
{
    const char *labels[1] = {"lab"};
    sesphr_srs *node[3] = {NULL, NULL, NULL};
    sesphr_buffer *nkey[3] = {NULL, NULL, NULL}, *rc[3] = {NULL, NULL, NULL}, *shares[3] = {NULL, NULL, NULL};
    sesphr_buffer *hpk = NULL, *rk = NULL, *cm = NULL, *sg = NULL, *sealed = NULL, *b = NULL, *bad = NULL;
    sesphr_patient_keys *p = NULL;
    sesphr_keypair *doc = NULL;
    const uint8_t *keys[3], *rcs[3];
    size_t key_lens[3], lens[3], hlen = 0;
    uint8_t pub[SESPHR_PUBLIC_KEY_LEN], pq[SESPHR_PQ_PUBLIC_KEY_LEN], ck[32], from[3] = {1, 2, 3};
    sesphr_result verdicts[3];
    int i;
    OK(sesphr_patient_keys_generate(S("patient-pq"), &p));
    OK(sesphr_keypair_generate_hybrid(&doc));
    OK(sesphr_keypair_public_key(doc, pub, sizeof pub));
    OK(sesphr_keypair_pq_public_key(doc, pq, sizeof pq));
    for (i = 0; i < 3; i++) {
        uint8_t storage[32];
        memcpy(storage, STORAGE_KEY, sizeof storage);
        storage[0] ^= (uint8_t)(i + 1);
        OK(sesphr_srs_new_in_memory(storage, sizeof storage, NULL, 0, NULL, &node[i]));
        OK(register_patient_keys(node[i], p, labels, 1));
        OK(register_user_kp(node[i], "dr-pq", "doctor", doc));
        OK(sesphr_srs_register_pq_key(node[i], S("dr-pq"), pq, sizeof pq));
        OK(sesphr_srs_pq_public_key(node[i], &nkey[i]));
        keys[i] = sesphr_buffer_data(nkey[i]);
        key_lens[i] = sesphr_buffer_len(nkey[i]);
    }
    /* Bad splits are refused, nothing written. */
    EXPECT(sesphr_patient_keys_hybrid_portion_public_key_split(p, S("lab"), 0, 1, keys, key_lens, 3, &hpk),
           SESPHR_RESULT_INVALID_THRESHOLD);
    EXPECT(sesphr_patient_keys_hybrid_portion_public_key_split(p, S("lab"), 0, 4, keys, key_lens, 3, &hpk),
           SESPHR_RESULT_INVALID_THRESHOLD);
    EXPECT(sesphr_patient_keys_hybrid_portion_public_key_split(p, S("lab"), 0, 2, NULL, key_lens, 3, &hpk),
           SESPHR_RESULT_NULL_PARAMETER);
    CHECK(hpk == NULL);
    OK(sesphr_patient_keys_hybrid_portion_public_key_split(p, S("lab"), 0, 2, keys, key_lens, 3, &hpk));
    sealed = seal(hpk, 4, 1000, "ferritin 12");
    OK(sesphr_header_len(sesphr_buffer_data(sealed), SESPHR_HEADER_PREFIX_LEN, &hlen));
    CHECK(hlen > SESPHR_HEADER_MAX_LEN + 2 * 1172 && hlen <= SESPHR_HYBRID_HEADER_MAX_LEN);
    EXPECT(sesphr_header_len(sesphr_buffer_data(sealed), 66, &hlen), SESPHR_RESULT_INVALID_LENGTH);
    OK(sesphr_open_as_owner(p, sesphr_buffer_data(sealed), sesphr_buffer_len(sealed), &b));
    CHECK(buf_eq(b, S("ferritin 12")));
    sesphr_buffer_free(b);
    b = NULL;
    /* The split of the re-encryption key, one share per node. */
    OK(sesphr_rekey_generate(p, S("lab"), 0, pub, sizeof pub, &rk));
    OK(sesphr_rekey_split(sesphr_buffer_data(rk), sesphr_buffer_len(rk), 2, 3, &cm, shares));
    OK(sesphr_sign_share_grant(p, S("lab"), 0, S("dr-pq"), sesphr_buffer_data(cm), sesphr_buffer_len(cm), NULL, &sg));
    for (i = 0; i < 3; i++) {
        OK(sesphr_srs_grant_share(node[i], sesphr_buffer_data(sg), sesphr_buffer_len(sg), sesphr_buffer_data(shares[i]),
                                  sesphr_buffer_len(shares[i])));
        OK(sesphr_srs_reencrypt(node[i], S("dr-pq"), sesphr_buffer_data(sealed), hlen, SESPHR_PURPOSE_TREATMENT, NULL,
                                0, 1, &rc[i]));
        rcs[i] = sesphr_buffer_data(rc[i]);
        lens[i] = sesphr_buffer_len(rc[i]);
    }
    OK(sesphr_patient_keys_consent_public_key(p, ck, sizeof ck));
    {
        /* Node 1 answers with node 2's share of the secret in its place:
         * set aside (DECRYPTION_FAILED) and named; nodes 2 and 3 open. */
        uint8_t *liar = malloc(lens[0]);
        memcpy(liar, rcs[0], lens[0]);
        memcpy(liar + SESPHR_RECAPSULE_SHARE_LEN, rcs[1] + SESPHR_RECAPSULE_SHARE_LEN, SESPHR_PQ_STANZA_LEN);
        rcs[0] = liar;
        OK(sesphr_threshold_open(doc, sesphr_buffer_data(sg), sesphr_buffer_len(sg), ck, sizeof ck,
                                 sesphr_buffer_data(cm), sesphr_buffer_len(cm), sesphr_buffer_data(sealed),
                                 sesphr_buffer_len(sealed), rcs, lens, from, 3, 0, &b, &bad, verdicts));
        CHECK(buf_eq(b, S("ferritin 12")));
        CHECK(sesphr_buffer_len(bad) == 1 && sesphr_buffer_data(bad)[0] == 1);
        CHECK(verdicts[0] == SESPHR_RESULT_DECRYPTION_FAILED && verdicts[1] == SESPHR_RESULT_OK &&
              verdicts[2] == SESPHR_RESULT_OK);
        sesphr_buffer_free(b);
        sesphr_buffer_free(bad);
        /* The liar and one honest node are too few. */
        EXPECT(sesphr_threshold_open(doc, sesphr_buffer_data(sg), sesphr_buffer_len(sg), ck, sizeof ck,
                                     sesphr_buffer_data(cm), sesphr_buffer_len(cm), sesphr_buffer_data(sealed),
                                     sesphr_buffer_len(sealed), rcs, lens, from, 2, 0, &b, NULL, verdicts),
               SESPHR_RESULT_TOO_FEW_SHARES);
        free(liar);
    }
    for (i = 0; i < 3; i++) {
        sesphr_srs_free(node[i]);
        sesphr_buffer_free(nkey[i]);
        sesphr_buffer_free(rc[i]);
        sesphr_buffer_free(shares[i]);
    }
    sesphr_buffer_free(hpk);
    sesphr_buffer_free(rk);
    sesphr_buffer_free(cm);
    sesphr_buffer_free(sg);
    sesphr_buffer_free(sealed);
    sesphr_keypair_free(doc);
    sesphr_patient_keys_free(p);
}

/* Threshold calls with bad arguments, and a split made in C. */
static void test_threshold(void)
{
    sesphr_patient_keys *p = NULL;
    sesphr_keypair *doc = NULL;
    sesphr_buffer *rk = NULL, *cm = NULL, *shares[3] = {NULL, NULL, NULL}, *sg = NULL, *sealed = NULL, *ppk = NULL;
    sesphr_buffer *rc[3] = {NULL, NULL, NULL}, *b = NULL, *hdr = NULL;
    uint8_t pub[32], rid[16] = {5}, index = 0;
    int i;
    OK(sesphr_patient_keys_generate(S("patient-t"), &p));
    OK(sesphr_keypair_generate(&doc));
    OK(sesphr_keypair_public_key(doc, pub, sizeof pub));
    OK(sesphr_rekey_generate(p, S("lab"), 0, pub, sizeof pub, &rk));
    EXPECT(sesphr_rekey_split(sesphr_buffer_data(rk), sesphr_buffer_len(rk), 1, 3, &cm, shares),
           SESPHR_RESULT_INVALID_THRESHOLD);
    EXPECT(sesphr_rekey_split(sesphr_buffer_data(rk), sesphr_buffer_len(rk), 4, 3, &cm, shares),
           SESPHR_RESULT_INVALID_THRESHOLD);
    EXPECT(sesphr_rekey_split(sesphr_buffer_data(rk), sesphr_buffer_len(rk), 2, 256, &cm, shares),
           SESPHR_RESULT_INVALID_THRESHOLD);
    EXPECT(sesphr_rekey_split(sesphr_buffer_data(rk), sesphr_buffer_len(rk), 2, 3, &cm, NULL),
           SESPHR_RESULT_NULL_PARAMETER);
    CHECK(cm == NULL && shares[0] == NULL);
    OK(sesphr_rekey_split(sesphr_buffer_data(rk), sesphr_buffer_len(rk), 2, 3, &cm, shares));
    for (i = 0; i < 3; i++) {
        OK(sesphr_share_verify(sesphr_buffer_data(shares[i]), sesphr_buffer_len(shares[i]), &index));
        CHECK(index == i + 1);
    }
    {
        /* A share whose scalar changed no longer matches its commitments. */
        size_t n = sesphr_buffer_len(shares[0]);
        uint8_t *copy = malloc(n);
        memcpy(copy, sesphr_buffer_data(shares[0]), n);
        copy[10] ^= 1;
        EXPECT(sesphr_share_verify(copy, n, &index), SESPHR_RESULT_INVALID_SHARE);
        free(copy);
    }
    EXPECT(sesphr_sign_share_grant(p, S("lab"), 1, S("dr-t"), sesphr_buffer_data(cm), sesphr_buffer_len(cm), NULL,
                                   &sg),
           SESPHR_RESULT_KEY_MISMATCH);
    OK(sesphr_sign_share_grant(p, S("lab"), 0, S("dr-t"), sesphr_buffer_data(cm), sesphr_buffer_len(cm), NULL, &sg));
    OK(sesphr_patient_keys_portion_public_key(p, S("lab"), 0, &ppk));
    OK(sesphr_seal(sesphr_buffer_data(ppk), sesphr_buffer_len(ppk), rid, sizeof rid, 1700000000,
                   (const uint8_t *)"creatinine 1.1", 14, &sealed));
    OK(sesphr_portion_header(sesphr_buffer_data(sealed), sesphr_buffer_len(sealed), &hdr));
    for (i = 0; i < 3; i++)
        OK(sesphr_share_reencrypt(sesphr_buffer_data(shares[i]), sesphr_buffer_len(shares[i]), sesphr_buffer_data(hdr),
                                  sesphr_buffer_len(hdr), 1, &rc[i]));
    {
        /* Node 1 lies (its E' replaced by node 2's): named; 2 and 3 open. */
        const uint8_t *rcs[3];
        size_t lens[3];
        uint8_t *liar = malloc(sesphr_buffer_len(rc[0]));
        sesphr_buffer *bad = NULL;
        memcpy(liar, sesphr_buffer_data(rc[0]), sesphr_buffer_len(rc[0]));
        memcpy(liar + 103, sesphr_buffer_data(rc[1]) + 103, 32);
        rcs[0] = liar;
        lens[0] = sesphr_buffer_len(rc[0]);
        for (i = 1; i < 3; i++) {
            rcs[i] = sesphr_buffer_data(rc[i]);
            lens[i] = sesphr_buffer_len(rc[i]);
        }
        uint8_t ck[32];
        sesphr_result verdicts[3];
        OK(sesphr_patient_keys_consent_public_key(p, ck, sizeof ck));
        OK(sesphr_threshold_open(doc, sesphr_buffer_data(sg), sesphr_buffer_len(sg), ck, sizeof ck,
                                 sesphr_buffer_data(cm), sesphr_buffer_len(cm), sesphr_buffer_data(sealed),
                                 sesphr_buffer_len(sealed), rcs, lens, NULL, 3, 0, &b, &bad, verdicts));
        CHECK(sesphr_buffer_len(b) == 14 && memcmp(sesphr_buffer_data(b), "creatinine 1.1", 14) == 0);
        CHECK(sesphr_buffer_len(bad) == 1 && sesphr_buffer_data(bad)[0] == 1);
        CHECK(verdicts[0] == SESPHR_RESULT_INVALID_RE_ENCRYPTION_PROOF && verdicts[1] == SESPHR_RESULT_OK &&
              verdicts[2] == SESPHR_RESULT_OK);
        sesphr_buffer_free(b);
        sesphr_buffer_free(bad);
        /* The liar and one honest node: too few valid shares; the detail
         * names the liar's answer and why. */
        EXPECT(sesphr_threshold_open(doc, sesphr_buffer_data(sg), sesphr_buffer_len(sg), ck, sizeof ck,
                                     sesphr_buffer_data(cm), sesphr_buffer_len(cm), sesphr_buffer_data(sealed),
                                     sesphr_buffer_len(sealed), rcs, lens, NULL, 2, 0, &b, NULL, verdicts),
               SESPHR_RESULT_TOO_FEW_SHARES);
        CHECK(strstr(sesphr_last_error_detail(), "(node 1): re-encryption proof does not verify") != NULL);
        CHECK(verdicts[0] == SESPHR_RESULT_INVALID_RE_ENCRYPTION_PROOF && verdicts[1] == SESPHR_RESULT_OK);
        free(liar);
    }
    for (i = 0; i < 3; i++) {
        sesphr_buffer_free(shares[i]);
        sesphr_buffer_free(rc[i]);
    }
    sesphr_buffer_free(rk);
    sesphr_buffer_free(cm);
    sesphr_buffer_free(sg);
    sesphr_buffer_free(sealed);
    sesphr_buffer_free(ppk);
    sesphr_buffer_free(hdr);
    sesphr_keypair_free(doc);
    sesphr_patient_keys_free(p);
}

static void check_case(const struct vcase *c)
{
    size_t pid_len, master_len, label_len, ppk_len, sec_len, pub_len, sealed_len, pt_len, rc_len, rcp_len,
        uid_len, seed_len, esec_len, pkeys_len, rk_len, hdr_len;
    uint8_t *pid = unhex(get(c, "patient_id"), &pid_len), *master = unhex(get(c, "patient_master"), &master_len),
            *label = unhex(get(c, "label"), &label_len), *ppk = unhex(get(c, "portion_public_key"), &ppk_len),
            *sec = unhex(get(c, "user_secret"), &sec_len), *pub = unhex(get(c, "user_public"), &pub_len),
            *sealed = unhex(get(c, "sealed_portion"), &sealed_len), *pt = unhex(get(c, "plaintext"), &pt_len),
            *rc = unhex(get(c, "recapsule"), &rc_len), *rcp = unhex(get(c, "recapsule_with_proof"), &rcp_len),
            *uid = unhex(get(c, "user_id"), &uid_len), *seed = unhex(get(c, "escrow_seed"), &seed_len),
            *esec = unhex(get(c, "escrow_secret"), &esec_len), *pkeys = unhex(get(c, "patient_keys"), &pkeys_len),
            *rk = unhex(get(c, "rekey"), &rk_len), *hdr = unhex(get(c, "header"), &hdr_len);
    uint32_t epoch = (uint32_t)strtoul(get(c, "epoch"), NULL, 10);
    sesphr_patient_keys *patient = NULL;
    sesphr_keypair *user = NULL, *issued = NULL;
    sesphr_srs *srs = NULL;
    sesphr_buffer *b = NULL;
    uint8_t out[32];

    OK(sesphr_patient_keys_from_master(pid, pid_len, master, master_len, &patient));
    OK(sesphr_patient_keys_export(patient, &b));
    CHECK(buf_eq(b, pkeys, pkeys_len));
    sesphr_buffer_free(b);
    OK(sesphr_patient_keys_portion_public_key(patient, label, label_len, epoch, &b));
    CHECK(buf_eq(b, ppk, ppk_len));
    sesphr_buffer_free(b);
    OK(sesphr_keypair_from_secret(sec, sec_len, &user));
    OK(sesphr_keypair_public_key(user, out, sizeof out));
    CHECK(pub_len == 32 && memcmp(out, pub, 32) == 0);
    OK(sesphr_portion_header(sealed, sealed_len, &b));
    CHECK(buf_eq(b, hdr, hdr_len));
    sesphr_buffer_free(b);
    {
        /* What the header says, from the header or from the whole sealed portion. */
        uint8_t rid[SESPHR_RECORD_ID_LEN];
        uint32_t e = 99;
        uint64_t at = 0;
        size_t rid_len, hl = 0;
        sesphr_buffer *lab = NULL, *key = NULL;
        uint8_t *want_rid = unhex(get(c, "record_id"), &rid_len);
        OK(sesphr_header_info(sealed, sealed_len, rid, sizeof rid, &e, &at, &lab, &key));
        CHECK(rid_len == 16 && memcmp(rid, want_rid, 16) == 0);
        CHECK(e == epoch && at == strtoull(get(c, "created_at"), NULL, 10));
        CHECK(buf_eq(lab, label, label_len));
        CHECK(buf_eq(key, ppk, ppk_len));
        sesphr_buffer_free(lab);
        sesphr_buffer_free(key);
        OK(sesphr_header_len(hdr, SESPHR_HEADER_PREFIX_LEN, &hl));
        CHECK(hl == hdr_len && hl >= SESPHR_HEADER_MIN_LEN && hl <= SESPHR_HEADER_MAX_LEN);
        EXPECT(sesphr_header_info(hdr, hdr_len, rid, 15, &e, &at, &lab, &key), SESPHR_RESULT_BUFFER_TOO_SMALL);
        hdr[hdr_len - 20] ^= 1; /* inside s: the proof no longer verifies */
        EXPECT(sesphr_header_info(hdr, hdr_len, rid, sizeof rid, &e, &at, &lab, &key), SESPHR_RESULT_INVALID_CAPSULE);
        hdr[hdr_len - 20] ^= 1;
        free(want_rid);
    }
    OK(sesphr_open_as_owner(patient, sealed, sealed_len, &b));
    CHECK(buf_eq(b, pt, pt_len));
    sesphr_buffer_free(b);
    OK(sesphr_open_as_delegatee(user, sealed, sealed_len, rc, rc_len, &b));
    CHECK(buf_eq(b, pt, pt_len));
    sesphr_buffer_free(b);
    OK(sesphr_open_as_delegatee(user, sealed, sealed_len, rcp, rcp_len, &b));
    CHECK(buf_eq(b, pt, pt_len));
    sesphr_buffer_free(b);
    /* The user's own expectations: this portion key, and a proof. */
    OK(sesphr_open_as_delegatee_checked(user, sealed, sealed_len, rcp, rcp_len, ppk, ppk_len, 1, &b));
    CHECK(buf_eq(b, pt, pt_len));
    sesphr_buffer_free(b);
    EXPECT(sesphr_open_as_delegatee_checked(user, sealed, sealed_len, rc, rc_len, ppk, ppk_len, 1, &b),
           SESPHR_RESULT_INVALID_RE_ENCRYPTION_PROOF);
    OK(sesphr_open_as_delegatee_checked(user, sealed, sealed_len, rc, rc_len, NULL, 0, 0, &b));
    CHECK(buf_eq(b, pt, pt_len));
    sesphr_buffer_free(b);
    {
        /* Another epoch of the same label: not the portion the user expects. */
        sesphr_buffer *other = NULL;
        OK(sesphr_patient_keys_portion_public_key(patient, label, label_len, epoch + 1, &other));
        EXPECT(sesphr_open_as_delegatee_checked(user, sealed, sealed_len, rcp, rcp_len, sesphr_buffer_data(other),
                                                sesphr_buffer_len(other), 0, &b),
               SESPHR_RESULT_KEY_MISMATCH);
        sesphr_buffer_free(other);
    }

    /* Through an SRS: the committed rekey re-encrypts the committed header into
     * exactly the committed re-capsule (re-encryption without proof is deterministic). */
    {
        /* The committed grant was signed long ago: no maximum age here. */
        sesphr_srs_options o;
        memset(&o, 0, sizeof o);
        o.struct_size = sizeof o;
        o.grant_max_age = UINT64_MAX;
        OK(sesphr_srs_new_in_memory(STORAGE_KEY, sizeof STORAGE_KEY, seed, seed_len, &o, &srs));
    }
    {
        const uint8_t *labels[1] = {label};
        size_t lens[1] = {label_len};
        uint32_t epochs[1] = {epoch};
        uint8_t proof[SESPHR_KEY_PROOF_LEN];
        sesphr_buffer *reg = NULL, *sg = NULL;
        OK(sesphr_patient_registration(patient, labels, lens, epochs, 1, &reg));
        size_t vproof_len = 0, vreg_len = 0, vgrant_len = 0;
        uint8_t *vproof = unhex(get(c, "user_key_proof"), &vproof_len);
        uint8_t *vreg = unhex(get(c, "registration"), &vreg_len);
        uint8_t *vgrant = unhex(get(c, "signed_grant"), &vgrant_len);
        OK(sesphr_keypair_prove_possession(user, uid, uid_len, proof, sizeof proof));
        /* The committed registration, user proof and signed grant are what the SRS takes. */
        CHECK(sesphr_buffer_len(reg) == vreg_len && vproof_len == sizeof proof);
        OK(sesphr_srs_register_patient(srs, vreg, vreg_len));
        OK(sesphr_srs_register_user(srs, uid, uid_len, S("doctor"), pub, pub_len, vproof, vproof_len));
        OK(sesphr_srs_grant(srs, vgrant, vgrant_len, rk, rk_len));
        /* Signing afresh gives another nonce: a different, equally valid grant. */
        OK(sesphr_sign_grant(patient, label, label_len, epoch, uid, uid_len, rk, rk_len, NULL, &sg));
        CHECK(sesphr_buffer_len(sg) != vgrant_len || memcmp(sesphr_buffer_data(sg), vgrant, vgrant_len) != 0);
        sesphr_buffer_free(reg);
        sesphr_buffer_free(sg);
        free(vproof); free(vreg); free(vgrant);
    }
    OK(sesphr_srs_reencrypt(srs, uid, uid_len, hdr, hdr_len, SESPHR_PURPOSE_TREATMENT, NULL, 0, 0, &b));
    CHECK(buf_eq(b, rc, rc_len));
    sesphr_buffer_free(b);
    OK(sesphr_srs_issue_keys(srs, uid, uid_len, epoch, &issued));
    OK(sesphr_keypair_secret_key(issued, out, sizeof out));
    CHECK(esec_len == 32 && memcmp(out, esec, 32) == 0);
    check_threshold_case(c, user, sealed, sealed_len, hdr, hdr_len, pt, pt_len, uid, uid_len, pub, pub_len);

    sesphr_keypair_free(issued);
    sesphr_srs_free(srs);
    sesphr_keypair_free(user);
    sesphr_patient_keys_free(patient);
    free(pid); free(master); free(label); free(ppk); free(sec); free(pub); free(sealed); free(pt);
    free(rc); free(rcp); free(uid); free(seed); free(esec); free(pkeys); free(rk); free(hdr);
}

static void test_vectors(const char *path)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    struct vcase c;
    int cases = 0, in_case = 0, i;
    CHECK(f != NULL);
    if (f == NULL) return;
    memset(&c, 0, sizeof c);
    while ((got = getline(&line, &cap, f)) >= 0) {
        char *eq, *k, *v, *end;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = 0;
        if (got == 0 || line[0] == '#') continue;
        if (strncmp(line, "[case ", 6) == 0) {
            if (in_case) { check_case(&c); cases++; }
            for (i = 0; i < c.n; i++) free(c.values[i]);
            memset(&c, 0, sizeof c);
            snprintf(c.name, sizeof c.name, "%s", line + 6);
            in_case = 1;
            continue;
        }
        eq = strchr(line, '=');
        if (eq == NULL || c.n >= MAX_ENTRIES) continue;
        *eq = 0;
        k = line;
        v = eq + 1;
        end = eq;
        while (end > k && end[-1] == ' ') *--end = 0;
        while (*v == ' ') v++;
        snprintf(c.keys[c.n], sizeof c.keys[c.n], "%s", k);
        c.values[c.n] = strdup(v);
        c.n++;
    }
    if (in_case) { check_case(&c); cases++; }
    for (i = 0; i < c.n; i++) free(c.values[i]);
    free(line);
    fclose(f);
    CHECK(cases == 3);
}

/* ----------------------------------------------------- threads */

#define THREADS 4
#define ROUNDS 40

struct thread_arg {
    struct world *w;
    const sesphr_buffer *sealed;
    int ok, denied, other;
};

static void *reader(void *p)
{
    struct thread_arg *a = p;
    int i;
    for (i = 0; i < ROUNDS; i++) {
        sesphr_buffer *hdr = NULL, *rc = NULL, *pt = NULL;
        sesphr_result r;
        if (sesphr_portion_header(sesphr_buffer_data(a->sealed), sesphr_buffer_len(a->sealed), &hdr) != SESPHR_RESULT_OK) {
            a->other++;
            continue;
        }
        r = sesphr_srs_reencrypt(a->w->srs, S("dr-house"), sesphr_buffer_data(hdr), sesphr_buffer_len(hdr),
                                 SESPHR_PURPOSE_TREATMENT, NULL, 0, 0, &rc);
        if (r == SESPHR_RESULT_OK) {
            if (sesphr_open_as_delegatee(a->w->doctor, sesphr_buffer_data(a->sealed), sesphr_buffer_len(a->sealed),
                                         sesphr_buffer_data(rc), sesphr_buffer_len(rc), &pt) == SESPHR_RESULT_OK
                && buf_eq(pt, S("shared")))
                a->ok++;
            else
                a->other++;
        } else if (r == SESPHR_RESULT_DENIED_REVOKED) {
            a->denied++;
        } else {
            a->other++;
        }
        sesphr_buffer_free(hdr);
        sesphr_buffer_free(rc);
        sesphr_buffer_free(pt);
    }
    return NULL;
}

static void test_threads(sesphr_srs *srs)
{
    struct world w;
    pthread_t t[THREADS];
    struct thread_arg args[THREADS];
    sesphr_buffer *sealed;
    int i, ok = 0, denied = 0, other = 0;
    uint64_t entries = 0;
    world_new(&w, srs);
    sealed = seal(w.ppk_medical, 5, 10, "shared");
    grant(&w, "dr-house", w.doctor, "medical", NULL, SESPHR_RESULT_OK);
    for (i = 0; i < THREADS; i++) {
        args[i].w = &w;
        args[i].sealed = sealed;
        args[i].ok = args[i].denied = args[i].other = 0;
        CHECK(pthread_create(&t[i], NULL, reader, &args[i]) == 0);
    }
    /* Revoke while the readers run. */
    OK(revoke_as(srs, w.patient, "medical", "dr-house"));
    for (i = 0; i < THREADS; i++) {
        CHECK(pthread_join(t[i], NULL) == 0);
        ok += args[i].ok;
        denied += args[i].denied;
        other += args[i].other;
    }
    CHECK(other == 0);
    CHECK(ok + denied == THREADS * ROUNDS);
    /* After the revocation returned, nothing more succeeds. */
    EXPECT(read_as(&w, "dr-house", w.doctor, sealed, ""), SESPHR_RESULT_DENIED_REVOKED);
    OK(sesphr_srs_verify_audit(srs, &entries));
    CHECK(entries >= (uint64_t)(THREADS * ROUNDS));
    sesphr_buffer_free(sealed);
    w.srs = NULL; /* owned by the caller */
    world_free(&w);
}

/* ----------------------------------------------------------- fork */

/* Seals and opens 1 MiB (two chunks or more: the parallel path). 0 on success. */
static int seal_open_1mib(const sesphr_patient_keys *pk, const sesphr_buffer *ppk)
{
    static uint8_t big[1 << 20];
    uint8_t rid[16] = {7};
    sesphr_buffer *sealed = NULL, *opened = NULL;
    int ok;
    memset(big, 0x5a, sizeof big);
    ok = sesphr_seal(sesphr_buffer_data(ppk), sesphr_buffer_len(ppk), rid, sizeof rid, 1, big, sizeof big,
                     &sealed) == SESPHR_RESULT_OK &&
         sesphr_open_as_owner(pk, sesphr_buffer_data(sealed), sesphr_buffer_len(sealed), &opened) ==
             SESPHR_RESULT_OK &&
         sesphr_buffer_len(opened) == sizeof big && memcmp(sesphr_buffer_data(opened), big, sizeof big) == 0;
    sesphr_buffer_free(sealed);
    sesphr_buffer_free(opened);
    return ok ? 0 : 1;
}

/* A pre-fork server: the parent used the thread pool, then forks; the child
 * seals and opens 1 MiB. It must finish (an alarm kills a hung child). */
static void test_fork(void)
{
    sesphr_patient_keys *pk = NULL;
    sesphr_buffer *ppk = NULL;
    pid_t child;
    int status = 0;
    OK(sesphr_patient_keys_generate(S("forking"), &pk));
    OK(sesphr_patient_keys_portion_public_key(pk, S("imaging"), 0, &ppk));
    CHECK(seal_open_1mib(pk, ppk) == 0);
    fflush(stdout);
    child = fork();
    if (child == 0) {
        alarm(20);
        _exit(seal_open_1mib(pk, ppk));
    }
    CHECK(child > 0);
    if (child > 0) {
        CHECK(waitpid(child, &status, 0) == child);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    /* The parent still uses its pool afterwards. */
    CHECK(seal_open_1mib(pk, ppk) == 0);
    OK(sesphr_set_max_threads(1));
    CHECK(seal_open_1mib(pk, ppk) == 0);
    OK(sesphr_set_max_threads(0));
    sesphr_buffer_free(ppk);
    sesphr_patient_keys_free(pk);
}

/* ----------------------------------------------------- persistence */

struct kept {
    int calls;
    uint8_t last[SESPHR_CHECKPOINT_LEN];
};

static void on_checkpoint(const uint8_t *cp, size_t len, void *ctx)
{
    struct kept *k = ctx;
    if (len == SESPHR_CHECKPOINT_LEN) {
        memcpy(k->last, cp, len);
        k->calls++;
    }
}

static int count_line(const uint8_t *data, size_t len, void *ctx)
{
    int *n = ctx;
    if (len > 2 && data[0] == '{' && data[len - 1] == '\n')
        (*n)++;
    return 0;
}

static int stop_at_first(const uint8_t *data, size_t len, void *ctx)
{
    (void)data;
    (void)len;
    (void)ctx;
    return 1;
}

/* Accepts two lines, then asks to stop. */
static int stop_after_two(const uint8_t *data, size_t len, void *ctx)
{
    int *n = ctx;
    (void)data;
    (void)len;
    return ++*n > 2;
}

/* Collects an archived segment. */
struct bytes_out {
    uint8_t *data;
    size_t len;
};

static int collect(const uint8_t *data, size_t len, void *ctx)
{
    struct bytes_out *b = ctx;
    uint8_t *grown = realloc(b->data, b->len + len);
    if (grown == NULL) return 1;
    memcpy(grown + b->len, data, len);
    b->data = grown;
    b->len += len;
    return 0;
}

/* The big-endian u64 at `p`. */
static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}

/* Registers `name` with a fresh key pair. */
static sesphr_result register_fresh(sesphr_srs *srs, const char *name, const char *role)
{
    sesphr_keypair *kp = NULL;
    sesphr_result r = sesphr_keypair_generate(&kp);
    if (r == SESPHR_RESULT_OK)
        r = register_user_kp(srs, name, role, kp);
    sesphr_keypair_free(kp);
    return r;
}

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    char buf[4096];
    size_t n;
    CHECK(in != NULL && out != NULL);
    if (in == NULL || out == NULL)
        return;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        fwrite(buf, 1, n, out);
    fclose(in);
    fclose(out);
}

/* Checkpoints through the callback, the one-writer lock, rollback refused
 * against a kept checkpoint, streaming export. */
static void test_checkpoints(const char *dir)
{
    char path[1024], old[1024];
    sesphr_srs *srs = NULL, *second = NULL;
    sesphr_buffer *cp = NULL, *latest = NULL;
    struct kept kept = {0};
    sesphr_srs_options opts;
    uint8_t vk[32];
    uint64_t n = 0;
    int lines = 0;
    memset(&opts, 0, sizeof opts);
    opts.struct_size = sizeof opts;
    opts.checkpoint_every = 2;
    opts.on_checkpoint = on_checkpoint;
    opts.on_checkpoint_ctx = &kept;
    snprintf(path, sizeof path, "%s/c-checkpoints.db", dir);
    snprintf(old, sizeof old, "%s/c-checkpoints-old.db", dir);
    remove(path);
    OK(sesphr_srs_open_sqlite(path, STORAGE_KEY, 32, NULL, 0, &opts, &srs));
    CHECK(kept.calls == 1); /* genesis */
    EXPECT(sesphr_srs_open_sqlite(path, STORAGE_KEY, 32, NULL, 0, NULL, &second), SESPHR_RESULT_STORE_LOCKED);
    CHECK(second == NULL);
    /* The detail names the file and who holds it. */
    CHECK(strstr(sesphr_last_error_detail(), path) != NULL);
    CHECK(strstr(sesphr_last_error_detail(), "held by this process") != NULL);
    {
        /* From another process: the holder's process id. */
        /* The child's verdict comes through a pipe: under valgrind its
         * exit status also counts what the fork left unfreed. */
        char want[64], verdict = 0;
        int fds[2];
        pid_t child;
        snprintf(want, sizeof want, "held by process %ld)", (long)getpid());
        fflush(stdout);
        CHECK(pipe(fds) == 0);
        child = fork();
        if (child == 0) {
            sesphr_srs *other = NULL;
            sesphr_result r = sesphr_srs_open_sqlite(path, STORAGE_KEY, 32, NULL, 0, NULL, &other);
            char v = r == SESPHR_RESULT_STORE_LOCKED && other == NULL &&
                             strstr(sesphr_last_error_detail(), want) != NULL
                         ? 'y'
                         : 'n';
            if (write(fds[1], &v, 1) != 1)
                _exit(1);
            _exit(0);
        }
        close(fds[1]);
        CHECK(child > 0 && read(fds[0], &verdict, 1) == 1 && verdict == 'y');
        close(fds[0]);
        CHECK(waitpid(child, NULL, 0) == child);
    }
    OK(register_fresh(srs, "c-doc", "doctor"));
    OK(register_fresh(srs, "c-nurse", "nurse"));
    CHECK(kept.calls == 2); /* two entries since the genesis */
    sesphr_srs_free(srs);
    srs = NULL;
    copy_file(path, old);
    opts.on_checkpoint = NULL;
    OK(sesphr_srs_open_sqlite(path, STORAGE_KEY, 32, NULL, 0, &opts, &srs));
    OK(register_fresh(srs, "c-family", "family"));
    OK(sesphr_srs_checkpoint(srs, &cp));
    CHECK(sesphr_buffer_len(cp) == SESPHR_CHECKPOINT_LEN);
    OK(sesphr_srs_latest_checkpoint(srs, &latest));
    CHECK(sesphr_buffer_len(latest) == SESPHR_CHECKPOINT_LEN &&
          memcmp(sesphr_buffer_data(latest), sesphr_buffer_data(cp), SESPHR_CHECKPOINT_LEN) == 0);
    OK(sesphr_srs_require_checkpoint(srs, sesphr_buffer_data(cp), sesphr_buffer_len(cp)));
    OK(sesphr_srs_require_checkpoint(srs, kept.last, sizeof kept.last));
    EXPECT(sesphr_srs_require_checkpoint(srs, kept.last, 10), SESPHR_RESULT_INVALID_LENGTH);
    OK(sesphr_srs_verifying_key(srs, vk, sizeof vk));
    EXPECT(sesphr_srs_verifying_key(srs, vk, 31), SESPHR_RESULT_BUFFER_TOO_SMALL);
    OK(sesphr_srs_export_audit_cb(srs, 1, count_line, &lines, &n));
    CHECK(n == 3 && lines == 3);
    lines = 0;
    OK(sesphr_srs_export_audit_cb(srs, 3, count_line, &lines, &n));
    CHECK(n == 1 && lines == 1);
    /* Stopping is its own code, and says how much was delivered. */
    n = 99;
    EXPECT(sesphr_srs_export_audit_cb(srs, 1, stop_at_first, NULL, &n), SESPHR_RESULT_STOPPED);
    CHECK(n == 0);
    lines = 0;
    EXPECT(sesphr_srs_export_audit_cb(srs, 0, stop_after_two, &lines, &n), SESPHR_RESULT_STOPPED);
    CHECK(n == 2);
    EXPECT(sesphr_srs_export_audit_cb(srs, 1, NULL, NULL, &n), SESPHR_RESULT_NULL_PARAMETER);
    OK(sesphr_srs_sync(srs));
    EXPECT(sesphr_srs_sync(NULL), SESPHR_RESULT_NULL_PARAMETER);
    {
        /* A registry snapshot: the next open reads it. */
        uint64_t snap_seq = 0, used_seq = 99;
        uint8_t used = 9;
        sesphr_srs *again = NULL;
        OK(sesphr_srs_snapshot_used(srs, &used, &used_seq));
        CHECK(used == 0 && used_seq == 0);
        OK(sesphr_srs_write_snapshot(srs, &snap_seq));
        CHECK(snap_seq > 0);
        EXPECT(sesphr_srs_write_snapshot(srs, NULL), SESPHR_RESULT_NULL_PARAMETER);
        sesphr_srs_free(srs);
        srs = NULL;
        OK(sesphr_srs_open_sqlite(path, STORAGE_KEY, 32, NULL, 0, &opts, &again));
        OK(sesphr_srs_snapshot_used(again, &used, &used_seq));
        CHECK(used == 1 && used_seq == snap_seq);
        EXPECT(sesphr_srs_snapshot_used(again, NULL, &used_seq), SESPHR_RESULT_NULL_PARAMETER);
        srs = again;
    }
    {
        /* Archive up to a checkpoint: a stopped delivery archives nothing;
         * the whole segment verifies with the SRS's key alone. */
        sesphr_buffer *now = NULL;
        struct bytes_out seg = {NULL, 0};
        uint64_t archived = 99, first = 0, last = 0, before = 0, after = 0;
        uint8_t end[SESPHR_CHECKPOINT_LEN];
        OK(sesphr_srs_checkpoint(srs, &now));
        uint64_t upto = be64(sesphr_buffer_data(now) + 5);
        OK(sesphr_srs_verify_audit(srs, &before));
        EXPECT(sesphr_srs_archive_audit_cb(srs, upto, stop_at_first, NULL, &archived), SESPHR_RESULT_STOPPED);
        CHECK(archived == 0);
        OK(sesphr_srs_verify_audit(srs, &after));
        CHECK(after == before);
        EXPECT(sesphr_srs_archive_audit_cb(srs, upto + 1000, collect, &seg, &archived), SESPHR_RESULT_DIVERGED);
        OK(sesphr_srs_archive_audit_cb(srs, upto, collect, &seg, &archived));
        CHECK(archived == upto && seg.len > 0);
        OK(sesphr_verify_segment(seg.data, seg.len, vk, sizeof vk, &first, &last, end, sizeof end));
        CHECK(first == 1 && last == upto);
        CHECK(memcmp(end, sesphr_buffer_data(now), SESPHR_CHECKPOINT_LEN) == 0);
        if (seg.len > 40) {
            seg.data[40] ^= 1;
            CHECK(sesphr_verify_segment(seg.data, seg.len, vk, sizeof vk, &first, &last, end, sizeof end) !=
                  SESPHR_RESULT_OK);
            seg.data[40] ^= 1;
        }
        EXPECT(sesphr_verify_segment(seg.data, seg.len, vk, sizeof vk, &first, &last, end, 10),
               SESPHR_RESULT_BUFFER_TOO_SMALL);
        free(seg.data);
        sesphr_buffer_free(now);
    }
    sesphr_srs_free(srs);
    srs = NULL;
    /* The kept checkpoint opens the current file and refuses the older copy. */
    opts.required_checkpoint = sesphr_buffer_data(cp);
    opts.required_checkpoint_len = sesphr_buffer_len(cp);
    OK(sesphr_srs_open_sqlite(path, STORAGE_KEY, 32, NULL, 0, &opts, &srs));
    sesphr_srs_free(srs);
    srs = NULL;
    EXPECT(sesphr_srs_open_sqlite(old, STORAGE_KEY, 32, NULL, 0, &opts, &srs), SESPHR_RESULT_ROLLED_BACK);
    CHECK(srs == NULL);
    opts.required_checkpoint = NULL;
    opts.required_checkpoint_len = 0;
    opts.durability = 7;
    EXPECT(sesphr_srs_open_sqlite(old, STORAGE_KEY, 32, NULL, 0, &opts, &srs), SESPHR_RESULT_INVALID_ARGUMENT);
    EXPECT(sesphr_srs_open_sqlite(":memory:", STORAGE_KEY, 32, NULL, 0, NULL, &srs), SESPHR_RESULT_STORE_NOT_DURABLE);
    /* Store failures say which file and why; a success clears the detail. */
    EXPECT(sesphr_srs_open_sqlite("/nonexistent-dir-sesphr/x.db", STORAGE_KEY, 32, NULL, 0, NULL, &srs),
           SESPHR_RESULT_STORE);
    CHECK(strstr(sesphr_last_error_detail(), "/nonexistent-dir-sesphr/x.db") != NULL);
    {
        char garbage[1024];
        FILE *g;
        snprintf(garbage, sizeof garbage, "%s/garbage.db", dir);
        g = fopen(garbage, "wb");
        CHECK(g != NULL);
        if (g != NULL) {
            fputs("this is not a database, just text long enough to be read as a header......"
                  "...............................................................",
                  g);
            fclose(g);
        }
        EXPECT(sesphr_srs_open_sqlite(garbage, STORAGE_KEY, 32, NULL, 0, NULL, &srs), SESPHR_RESULT_STORE);
        CHECK(strstr(sesphr_last_error_detail(), "garbage.db") != NULL);
        CHECK(strstr(sesphr_last_error_detail(), "not a database") != NULL);
        EXPECT(sesphr_srs_open_sqlite(dir, STORAGE_KEY, 32, NULL, 0, NULL, &srs), SESPHR_RESULT_STORE);
        CHECK(strlen(sesphr_last_error_detail()) > strlen(dir));
    }
    CHECK(strcmp(sesphr_version(), "") != 0 && strcmp(sesphr_last_error_detail(), "") != 0);
    OK(sesphr_set_max_threads(0));
    CHECK(strcmp(sesphr_last_error_detail(), "") == 0);
    EXPECT(sesphr_srs_open_sqlite("", STORAGE_KEY, 32, NULL, 0, NULL, &srs), SESPHR_RESULT_STORE_NOT_DURABLE);
    opts.durability = 1;
    OK(sesphr_srs_open_sqlite(old, STORAGE_KEY, 32, NULL, 0, &opts, &srs));
    OK(sesphr_srs_verify_audit(srs, &n));
    CHECK(n == 2);
    sesphr_srs_free(srs);
    sesphr_buffer_free(cp);
    sesphr_buffer_free(latest);
}

static void test_sqlite(const char *dir)
{
    char path[1024];
    sesphr_srs *srs = NULL;
    sesphr_patient_keys *pk = NULL;
    sesphr_buffer *ppk = NULL;
    uint64_t entries = 0, again = 0;
    uint8_t wrong[32] = {8};
    const char *labels[1] = {"lab"};
    snprintf(path, sizeof path, "%s/c-test.db", dir);
    remove(path);
    OK(sesphr_srs_open_sqlite(path, STORAGE_KEY, sizeof STORAGE_KEY, NULL, 0, NULL, &srs));
    OK(sesphr_patient_keys_generate(S("persisted"), &pk));
    OK(sesphr_patient_keys_portion_public_key(pk, S("lab"), 0, &ppk));
    OK(register_patient_keys(srs, pk, labels, 1));
    OK(sesphr_srs_verify_audit(srs, &entries));
    sesphr_srs_free(srs);
    srs = NULL;
    OK(sesphr_srs_open_sqlite(path, STORAGE_KEY, sizeof STORAGE_KEY, NULL, 0, NULL, &srs));
    OK(sesphr_srs_verify_audit(srs, &again));
    CHECK(again == entries && entries == 2);
    EXPECT(register_patient_keys(srs, pk, labels, 1), SESPHR_RESULT_ALREADY_REGISTERED);
    sesphr_srs_free(srs);
    srs = NULL;
    EXPECT(sesphr_srs_open_sqlite(path, wrong, sizeof wrong, NULL, 0, NULL, &srs), SESPHR_RESULT_TAMPERED);
    CHECK(srs == NULL);
    sesphr_buffer_free(ppk);
    sesphr_patient_keys_free(pk);
}

/* Two SRS handles on one PostgreSQL database (as two processes would be):
 * a grant made through one serves through the other, a revocation made
 * through one is refused at once by the other. Without SESPHR_PG_CONNINFO
 * (or in a library built without the postgres feature) only the error
 * paths are checked. */
static void test_postgres(const char *conninfo)
{
    struct world w;
    sesphr_srs *other = NULL;
    sesphr_buffer *lab = NULL;
    sesphr_result r;
    r = sesphr_srs_open_postgres("host=/nonexistent dbname=none", STORAGE_KEY, sizeof STORAGE_KEY,
                                 NULL, 0, NULL, &other);
    CHECK(r == SESPHR_RESULT_STORE_CONNECTION || r == SESPHR_RESULT_STORE);
    CHECK(other == NULL && strlen(sesphr_last_error_detail()) > 0);
    EXPECT(sesphr_srs_open_postgres(NULL, STORAGE_KEY, sizeof STORAGE_KEY, NULL, 0, NULL, &other),
           SESPHR_RESULT_NULL_PARAMETER);
    if (conninfo == NULL || *conninfo == 0) return;

    OK(sesphr_srs_open_postgres(conninfo, STORAGE_KEY, sizeof STORAGE_KEY, NULL, 0, NULL, &w.srs));
    world_new(&w, w.srs);
    OK(sesphr_srs_open_postgres(conninfo, STORAGE_KEY, sizeof STORAGE_KEY, NULL, 0, NULL, &other));
    lab = seal(w.ppk_lab, 9, 1500, "HbA1c 5.4%");
    grant(&w, "dr-house", w.doctor, "lab", NULL, SESPHR_RESULT_OK);
    {
        sesphr_srs *mine = w.srs;
        w.srs = other; /* read through the other handle */
        EXPECT(read_as(&w, "dr-house", w.doctor, lab, "HbA1c 5.4%"), SESPHR_RESULT_OK);
        OK(revoke_as(mine, w.patient, "lab", "dr-house"));
        EXPECT(read_as(&w, "dr-house", w.doctor, lab, ""), SESPHR_RESULT_DENIED_REVOKED);
        w.srs = mine;
    }
    /* The same identity cannot be registered twice through either. */
    EXPECT(register_user_kp(other, "dr-house", "doctor", w.researcher), SESPHR_RESULT_ALREADY_REGISTERED);
    sesphr_srs_free(other);
    sesphr_buffer_free(lab);
    world_free(&w);
}

int main(int argc, char **argv)
{
    sesphr_srs *srs = NULL;
    if (argc < 3) {
        fprintf(stderr, "usage: %s VECTORS_FILE SCRATCH_DIR\n", argv[0]);
        return 2;
    }
    test_basics();
    test_backups();
    OK(sesphr_srs_new_in_memory(STORAGE_KEY, sizeof STORAGE_KEY, NULL, 0, NULL, &srs));
    test_full_flow(srs);
    sesphr_srs_free(srs);
    srs = NULL;
    test_streams();
    test_hybrid();
    test_hybrid_threshold();
    test_consent();
    test_threshold();
    test_errors();
    test_struct_sizes();
    test_vectors(argv[1]);
    OK(sesphr_srs_new_in_memory(STORAGE_KEY, sizeof STORAGE_KEY, NULL, 0, NULL, &srs));
    test_threads(srs);
    sesphr_srs_free(srs);
    test_sqlite(argv[2]);
    test_checkpoints(argv[2]);
    test_fork();
    test_postgres(getenv("SESPHR_PG_CONNINFO"));
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
