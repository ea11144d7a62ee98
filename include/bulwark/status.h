/*
 * status.h: status codes.
 *
 * Every bulwark function that can fail returns an int: 0 on success or a
 * negative code. System failures are -errno (the same values libuv uses on
 * Unix, so a UV_E* code can be compared directly). bulwark's own codes live
 * in the reserved range [-30999, -30000] and are listed below, generated
 * from one table with their names and messages.
 */
#ifndef BULWARK_STATUS_H
#define BULWARK_STATUS_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, message) */
#define BW_STATUS_MAP(X)                                                                           \
    X(BW_EFAULTSIG, -30001, "a fault signal was caught in a guarded callback")                     \
    X(BW_ESTACKOVERFLOW, -30002, "stack overflow caught in a guarded callback")                    \
    X(BW_ETHROWN, -30003, "a value was thrown")                                                    \
    X(BW_EUNHANDLED, -30004, "unhandled 'error' event")                                            \
    X(BW_EDISPOSED, -30005, "the domain is disposed")                                              \
    X(BW_ENOTRUNNING, -30006, "server is not running")                                             \
    X(BW_ECLOSING, -30007, "already closing")                                                      \
    X(BW_ECYCLE, -30008, "adding would make a domain contain itself")                              \
    X(BW_EBUSY, -30009, "handles are still open")                                                  \
    X(BW_ETIMEOUT, -30010, "a time limit was exceeded")                                            \
    X(BW_EHANG, -30011, "the event loop stopped turning")                                          \
    X(BW_EQUARANTINED, -30012, "this request is quarantined after crashing workers")               \
    X(BW_EPROTO, -30013, "malformed message")                                                      \
    X(BW_ELIMIT, -30014, "a configured limit was exceeded")                                        \
    X(BW_ESTATE, -30015, "the object is not in a state that allows this call")

enum bw_status {
    BW_OK = 0,
#define BW__STATUS_ENUM(name, value, msg) name = (value),
    BW_STATUS_MAP(BW__STATUS_ENUM)
#undef BW__STATUS_ENUM
};

/*
 * A human-readable message for any status: bulwark's own codes, -errno
 * codes and libuv codes. Never NULL; unknown codes give "unknown error".
 * The string is static.
 */
BW_EXTERN const char *bw_strerror(int status);

/*
 * The symbolic name of a status ("BW_EDISPOSED", "ENOENT", ...). Never NULL;
 * unknown codes give "UNKNOWN". The string is static.
 */
BW_EXTERN const char *bw_err_name(int status);

#ifdef __cplusplus
}
#endif
#endif /* BULWARK_STATUS_H */
