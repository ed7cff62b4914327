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
    std::printf("C++: sesphr %s, %s\n", sesphr_version(), sesphr_result_message(r));
    return r == SESPHR_RESULT_OK ? 0 : 1;
}
