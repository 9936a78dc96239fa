#include "cheng_native.h"
const char *cb_version(void) { return "0.1.0"; }
