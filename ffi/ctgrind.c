/* Valgrind client requests for the constant-time check (feature `ctgrind`).
 * Outside valgrind each request is a few no-op instructions. */
#include <stddef.h>
#include <valgrind/memcheck.h>

void sesphr_ctgrind_poison(const void *p, size_t n) {
    (void)VALGRIND_MAKE_MEM_UNDEFINED(p, n);
}

void sesphr_ctgrind_unpoison(const void *p, size_t n) {
    (void)VALGRIND_MAKE_MEM_DEFINED(p, n);
}

unsigned sesphr_ctgrind_running(void) {
    return (unsigned)RUNNING_ON_VALGRIND;
}
