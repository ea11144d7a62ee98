/*
 * status.c: messages and names for status codes.
 */
#include <uv.h>

#include "internal.h"

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
    if (status < 0)
        return uv_strerror(status); /* -errno and UV_E* codes; static strings */
    return "unknown error";
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
    if (status < 0) {
        const char *name = uv_err_name(status);
        /* libuv answers "Unknown system error %d" (allocated) for codes it
         * does not know; keep our promise of a static string. */
        if (name != NULL && name[0] != 'U')
            return name;
    }
    return "UNKNOWN";
}
