/*
 * The sesphr story from C: a patient seals portions of a record, the SRS
 * re-encrypts for a granted doctor, the patient revokes, a new doctor reads
 * the old record.
 *
 * Build:  make -C examples/c        (uses pkg-config, see README)
 */
#include <stdio.h>
#include <string.h>

#include "sesphr.h"

#define S(str) (const uint8_t *)(str), strlen(str)

static int fail(const char *what, sesphr_result r)
{
    fprintf(stderr, "%s: %s\n", what, sesphr_result_message(r));
    return 1;
}

/* Registers `user` with a fresh key pair and grants it `label`. */
static sesphr_result add_doctor(sesphr_srs *srs, sesphr_patient_keys *patient, const char *user,
                                const char *label, sesphr_keypair **out)
{
    uint8_t pk[SESPHR_PUBLIC_KEY_LEN];
    sesphr_buffer *rekey = NULL;
    sesphr_result r;
    if ((r = sesphr_keypair_generate(out)) != SESPHR_RESULT_OK) return r;
    if ((r = sesphr_keypair_public_key(*out, pk, sizeof pk)) != SESPHR_RESULT_OK) return r;
    if ((r = sesphr_srs_register_user(srs, S(user), S("doctor"), pk, sizeof pk)) != SESPHR_RESULT_OK) return r;
    if ((r = sesphr_rekey_generate(patient, S(label), 0, pk, sizeof pk, &rekey)) != SESPHR_RESULT_OK) return r;
    r = sesphr_srs_grant(srs, S("patient-0042"), S(label), S(user), sesphr_buffer_data(rekey),
                         sesphr_buffer_len(rekey), NULL, NULL);
    sesphr_buffer_free(rekey);
    return r;
}

/* The doctor asks the SRS to re-encrypt the portion's header, then opens it. */
static void doctor_reads(sesphr_srs *srs, const char *user, sesphr_keypair *kp, sesphr_buffer *sealed)
{
    sesphr_buffer *header = NULL, *recapsule = NULL, *plain = NULL;
    sesphr_result r = sesphr_portion_header(sesphr_buffer_data(sealed), sesphr_buffer_len(sealed), &header);
    if (r == SESPHR_RESULT_OK)
        r = sesphr_srs_reencrypt(srs, S(user), sesphr_buffer_data(header), sesphr_buffer_len(header), 0, &recapsule);
    if (r == SESPHR_RESULT_OK)
        r = sesphr_open_as_delegatee(kp, sesphr_buffer_data(sealed), sesphr_buffer_len(sealed),
                                     sesphr_buffer_data(recapsule), sesphr_buffer_len(recapsule), &plain);
    if (r == SESPHR_RESULT_OK)
        printf("%s reads \"%.*s\"\n", user, (int)sesphr_buffer_len(plain), (const char *)sesphr_buffer_data(plain));
    else
        printf("%s is denied: %s\n", user, sesphr_result_message(r));
    sesphr_buffer_free(header);
    sesphr_buffer_free(recapsule);
    sesphr_buffer_free(plain);
}

int main(void)
{
    uint8_t storage_key[SESPHR_STORAGE_KEY_LEN] = {0}, record[SESPHR_RECORD_ID_LEN] = {0x42};
    const char *text = "diagnosis: asthma; plan: inhaler";
    sesphr_srs *srs = NULL;
    sesphr_patient_keys *patient = NULL;
    sesphr_keypair *house = NULL, *cuddy = NULL;
    sesphr_buffer *medical = NULL, *sealed = NULL;
    sesphr_result r;
    const uint8_t *keys[1];
    size_t lens[1];

    /* A real host loads its storage key from a key manager. */
    storage_key[0] = 1;
    if ((r = sesphr_srs_new_in_memory(storage_key, sizeof storage_key, NULL, 0, NULL, &srs)) != SESPHR_RESULT_OK)
        return fail("srs", r);
    if ((r = sesphr_patient_keys_generate(S("patient-0042"), &patient)) != SESPHR_RESULT_OK) return fail("patient", r);
    if ((r = sesphr_patient_keys_portion_public_key(patient, S("medical"), 0, &medical)) != SESPHR_RESULT_OK)
        return fail("portion key", r);
    keys[0] = sesphr_buffer_data(medical);
    lens[0] = sesphr_buffer_len(medical);
    if ((r = sesphr_srs_register_patient(srs, S("patient-0042"), keys, lens, 1)) != SESPHR_RESULT_OK)
        return fail("register patient", r);
    printf("patient-0042 registered with portion 'medical'\n");

    /* Anyone with the portion public key can add a record. */
    if ((r = sesphr_seal(sesphr_buffer_data(medical), sesphr_buffer_len(medical), record, sizeof record,
                         1700000000, (const uint8_t *)text, strlen(text), &sealed)) != SESPHR_RESULT_OK)
        return fail("seal", r);
    printf("a medical record was sealed (%zu bytes in the cloud)\n", sesphr_buffer_len(sealed));

    if ((r = add_doctor(srs, patient, "dr-house", "medical", &house)) != SESPHR_RESULT_OK) return fail("grant", r);
    printf("dr-house granted 'medical'\n");
    doctor_reads(srs, "dr-house", house, sealed);

    if ((r = sesphr_srs_revoke(srs, S("patient-0042"), S("medical"), S("dr-house"))) != SESPHR_RESULT_OK)
        return fail("revoke", r);
    printf("dr-house revoked (no record re-encrypted)\n");
    doctor_reads(srs, "dr-house", house, sealed);

    if ((r = add_doctor(srs, patient, "dr-cuddy", "medical", &cuddy)) != SESPHR_RESULT_OK) return fail("grant", r);
    printf("dr-cuddy joins and is granted 'medical'\n");
    doctor_reads(srs, "dr-cuddy", cuddy, sealed);

    sesphr_buffer_free(sealed);
    sesphr_buffer_free(medical);
    sesphr_keypair_free(house);
    sesphr_keypair_free(cuddy);
    sesphr_patient_keys_free(patient);
    sesphr_srs_free(srs);
    return 0;
}
