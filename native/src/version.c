/* version.c: library identity, checked by the Python loader. */
#include "cheng_native.h"

const char *cb_version(void) { return "0.1.0"; }
int cb_abi_version(void) { return CB_ABI_VERSION; }
