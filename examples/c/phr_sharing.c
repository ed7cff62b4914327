/*
 * The sesphr story from C: a patient seals portions of a record, signs a
 * grant, the SRS re-encrypts for the doctor, the patient signs a revocation
 * (and keeps the SRS's signed receipt), a new doctor reads the old record.
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

/* Registers `user` with a fresh key pair (and the proof that it holds it);
 * the patient signs a grant of `label` to it. */
static sesphr_result add_doctor(sesphr_srs *srs, sesphr_patient_keys *patient, const char *user,
                                const char *label, sesphr_keypair **out)
{
    uint8_t pk[SESPHR_PUBLIC_KEY_LEN], proof[SESPHR_KEY_PROOF_LEN];
    sesphr_buffer *rekey = NULL, *grant = NULL;
    sesphr_result r;
    if ((r = sesphr_keypair_generate(out)) != SESPHR_RESULT_OK) return r;
    if ((r = sesphr_keypair_public_key(*out, pk, sizeof pk)) != SESPHR_RESULT_OK) return r;
    if ((r = sesphr_keypair_prove_possession(*out, S(user), proof, sizeof proof)) != SESPHR_RESULT_OK) return r;
    if ((r = sesphr_srs_register_user(srs, S(user), S("doctor"), pk, sizeof pk, proof, sizeof proof)) !=
        SESPHR_RESULT_OK)
        return r;
    if ((r = sesphr_rekey_generate(patient, S(label), 0, pk, sizeof pk, &rekey)) != SESPHR_RESULT_OK) return r;
    r = sesphr_sign_grant(patient, S(label), 0, S(user), sesphr_buffer_data(rekey), sesphr_buffer_len(rekey),
                          NULL, &grant);
    if (r == SESPHR_RESULT_OK)
        r = sesphr_srs_grant(srs, sesphr_buffer_data(grant), sesphr_buffer_len(grant), sesphr_buffer_data(rekey),
                             sesphr_buffer_len(rekey));
    sesphr_buffer_free(rekey);
    sesphr_buffer_free(grant);
    return r;
}

/* The doctor asks the SRS to re-encrypt the portion's header, then opens it. */
static void doctor_reads(sesphr_srs *srs, const char *user, sesphr_keypair *kp, sesphr_buffer *sealed)
{
    sesphr_buffer *header = NULL, *recapsule = NULL, *plain = NULL;
    sesphr_result r = sesphr_portion_header(sesphr_buffer_data(sealed), sesphr_buffer_len(sealed), &header);
    if (r == SESPHR_RESULT_OK)
        r = sesphr_srs_reencrypt(srs, S(user), sesphr_buffer_data(header), sesphr_buffer_len(header),
                                 SESPHR_PURPOSE_TREATMENT, NULL, 0, 0, &recapsule);
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
    sesphr_buffer *medical = NULL, *sealed = NULL, *reg = NULL, *revocation = NULL, *receipt = NULL;
    sesphr_result r;
    const uint8_t *labels[1] = {(const uint8_t *)"medical"};
    size_t label_lens[1] = {7};
    uint32_t epochs[1] = {0};
    uint8_t srs_key[32];

    /* A real host loads its storage key from a key manager. */
    storage_key[0] = 1;
    if ((r = sesphr_srs_new_in_memory(storage_key, sizeof storage_key, NULL, 0, NULL, &srs)) != SESPHR_RESULT_OK)
        return fail("srs", r);
    if ((r = sesphr_patient_keys_generate(S("patient-0042"), &patient)) != SESPHR_RESULT_OK) return fail("patient", r);
    if ((r = sesphr_patient_keys_portion_public_key(patient, S("medical"), 0, &medical)) != SESPHR_RESULT_OK)
        return fail("portion key", r);
    /* The patient's client signs the registration (consent key, portion key and its proof). */
    if ((r = sesphr_patient_registration(patient, labels, label_lens, epochs, 1, &reg)) != SESPHR_RESULT_OK)
        return fail("registration", r);
    if ((r = sesphr_srs_register_patient(srs, sesphr_buffer_data(reg), sesphr_buffer_len(reg))) != SESPHR_RESULT_OK)
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

    if ((r = sesphr_sign_revocation(patient, S("medical"), S("dr-house"), &revocation)) != SESPHR_RESULT_OK)
        return fail("sign revocation", r);
    if ((r = sesphr_srs_revoke(srs, sesphr_buffer_data(revocation), sesphr_buffer_len(revocation), &receipt)) !=
        SESPHR_RESULT_OK)
        return fail("revoke", r);
    if ((r = sesphr_srs_verifying_key(srs, srs_key, sizeof srs_key)) != SESPHR_RESULT_OK) return fail("srs key", r);
    r = sesphr_revocation_receipt_verify(sesphr_buffer_data(receipt), sesphr_buffer_len(receipt), srs_key,
                                         sizeof srs_key);
    printf("dr-house revoked (no record re-encrypted); the SRS's receipt %s\n",
           r == SESPHR_RESULT_OK ? "verifies" : "does NOT verify");
    doctor_reads(srs, "dr-house", house, sealed);

    if ((r = add_doctor(srs, patient, "dr-cuddy", "medical", &cuddy)) != SESPHR_RESULT_OK) return fail("grant", r);
    printf("dr-cuddy joins and is granted 'medical'\n");
    doctor_reads(srs, "dr-cuddy", cuddy, sealed);

    sesphr_buffer_free(sealed);
    sesphr_buffer_free(medical);
    sesphr_buffer_free(reg);
    sesphr_buffer_free(revocation);
    sesphr_buffer_free(receipt);
    sesphr_keypair_free(house);
    sesphr_keypair_free(cuddy);
    sesphr_patient_keys_free(patient);
    sesphr_srs_free(srs);
    return 0;
}
