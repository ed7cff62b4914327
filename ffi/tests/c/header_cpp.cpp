// The header compiles as C++ (extern "C" guards, no C-only constructs) and
// links: what a C++ EHR vendor's build does first.
#include "sesphr.h"

#include <cstdio>

int main()
{
    sesphr_keypair *kp = nullptr;
    if (sesphr_keypair_generate(&kp) != SESPHR_RESULT_OK) return 1;
    uint8_t pk[SESPHR_PUBLIC_KEY_LEN];
    sesphr_result r = sesphr_keypair_public_key(kp, pk, sizeof pk);
    sesphr_keypair_free(kp);
    // The options initializers work in C++ too (no designated initializers
    // before C++20): the size set, every other field zero.
    sesphr_srs_options o = SESPHR_SRS_OPTIONS_INIT;
    sesphr_grant_options g = SESPHR_GRANT_OPTIONS_INIT;
    if (o.struct_size != sizeof o || o.checkpoint_every != 0 || g.struct_size != sizeof g ||
        g.issued_at != 0)
        return 1;
    sesphr_srs *srs = nullptr;
    static const uint8_t key[32] = {1};
    if (sesphr_srs_new_in_memory(key, sizeof key, nullptr, 0, &o, &srs) != SESPHR_RESULT_OK) return 1;
    sesphr_srs_free(srs);
    std::printf("C++: sesphr %s, %s\n", sesphr_version(), sesphr_result_message(r));
    return r == SESPHR_RESULT_OK ? 0 : 1;
}
