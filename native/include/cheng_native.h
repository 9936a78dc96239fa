#ifndef CHENG_NATIVE_H
#define CHENG_NATIVE_H
const char *cb_version(void);
#endif
