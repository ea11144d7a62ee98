/* fuzz_http_chunked: fuzz_http after a chunked POST head, with small limits
 * (see fuzz_http.c). */
#define BW_FUZZ_CHUNKED 1
#include "fuzz_http.c"
