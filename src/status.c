/*
 * status.c: messages and names for status codes.
 */
#include <string.h>
#include <uv.h>

#include "internal.h"

/* Whether libuv has a name for `status`. For a code it does not know,
 * uv_strerror/uv_err_name return "Unknown system error N" in memory they
 * allocate (and the caller never frees): ask the _r form instead. */
static bool uv_knows(int status)
{
    char buf[64];
    uv_err_name_r(status, buf, sizeof buf);
    return strncmp(buf, "Unknown system error", 20) != 0;
}

/* glibc names every errno value, libuv only the portable ones. */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
#define BW__ERRNO_DESC(e) strerrordesc_np(e)
#define BW__ERRNO_NAME(e) strerrorname_np(e)
#else
#define BW__ERRNO_DESC(e) ((void)(e), (const char *)NULL)
#define BW__ERRNO_NAME(e) ((void)(e), (const char *)NULL)
#endif

const char *bw_version(void)
{
#define BW__STR2(x) #x
#define BW__STR(x) BW__STR2(x)
    return BW__STR(BW_VERSION_MAJOR) "." BW__STR(BW_VERSION_MINOR) "." BW__STR(BW_VERSION_PATCH);
}

const char *bw_strerror(int status)
{
    switch (status) {
    case 0:
        return "success";
#define BW__STATUS_MSG(name, value, msg)                                                           \
    case value:                                                                                    \
        return msg;
        BW_STATUS_MAP(BW__STATUS_MSG)
#undef BW__STATUS_MSG
    default:
        break;
    }
    if (status < 0 && uv_knows(status))
        return uv_strerror(status); /* -errno and UV_E* codes; static strings */
    const char *desc = status < 0 && status > -4096 ? BW__ERRNO_DESC(-status) : NULL;
    return desc != NULL ? desc : "unknown error";
}

const char *bw_err_name(int status)
{
    switch (status) {
    case 0:
        return "OK";
#define BW__STATUS_NAME(name, value, msg)                                                          \
    case value:                                                                                    \
        return #name;
        BW_STATUS_MAP(BW__STATUS_NAME)
#undef BW__STATUS_NAME
    default:
        break;
    }
    if (status < 0 && uv_knows(status))
        return uv_err_name(status);
    const char *name = status < 0 && status > -4096 ? BW__ERRNO_NAME(-status) : NULL;
    return name != NULL ? name : "UNKNOWN";
}
