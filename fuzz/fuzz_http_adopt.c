/* fuzz_http_adopt: fuzz_http on a connection that arrives with a state
 * another server gave away, carrying unparsed bytes (see fuzz_http.c). */
#define BW_FUZZ_ADOPT 1
#include "fuzz_http.c"
