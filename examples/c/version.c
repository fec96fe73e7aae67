/* Prints the library version through the C API and checks it against the header's macros. */
#include <stdio.h>
#include <string.h>

#include "autocontour.h"

#define STR2(x) #x
#define STR(x) STR2(x)

int main(void) {
    const char *v = ac_version();
    const char *expected = STR(AC_VERSION_MAJOR) "." STR(AC_VERSION_MINOR) "." STR(AC_VERSION_PATCH);
    printf("autocontour %s\n", v);
    if (strcmp(v, expected) != 0) {
        fprintf(stderr, "version mismatch: library %s, header %s\n", v, expected);
        return 1;
    }
    return 0;
}
