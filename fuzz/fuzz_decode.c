/*
 * fuzz_decode: the percent-decoders and the query lookup (http_decode.c)
 * on arbitrary bytes. The first byte picks the flags and a parameter
 * index; the rest, up to the first NUL, is the input (a path or a query).
 * Checked beyond "no crash": decoding never grows its input, a success is
 * NUL-terminated at its length with no NUL inside, and a found value lies
 * inside the query.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "http_decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned flags = data[0] & 3;
    size_t nth = (data[0] >> 2) & 7;
    size_t len = strnlen((const char *)data + 1, size - 1);
    char *in = malloc(len + 1);
    char *out = malloc(len + 1);
    char *scratch = malloc(len + 1);
    if (in == NULL || out == NULL || scratch == NULL)
        abort();
    memcpy(in, data + 1, len);
    in[len] = '\0';
    size_t n = 0;
    if (bw__pct_decode(in, len, out, &n, flags) == 0) {
        if (n > len || out[n] != '\0' || strlen(out) != n)
            abort();
    }
    /* The name is the input's first pair's name, decoded: it must be found. */
    const char *amp = strchr(in, '&');
    size_t first = amp != NULL ? (size_t)(amp - in) : len;
    const char *eq = memchr(in, '=', first);
    size_t name_len = eq != NULL ? (size_t)(eq - in) : first;
    char *name = malloc(name_len + 1);
    if (name == NULL)
        abort();
    size_t dn;
    bool name_ok = bw__pct_decode(in, name_len, name, &dn, BW__DECODE_PLUS) == 0 && len > 0;
    const char *v;
    size_t vlen;
    int rc = bw__query_find(in, name_ok ? name : "", name_ok ? 0 : nth, &v, &vlen, scratch);
    if (rc == 0 && (v < in || v + vlen > in + len))
        abort();
    if (name_ok && rc != 0 && rc != BW_ELIMIT)
        abort(); /* the first pair's own name was not found */
    free(name);
    free(in);
    free(out);
    free(scratch);
    return 0;
}
