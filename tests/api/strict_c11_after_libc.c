/* The same with a libc header first: the feature macro then comes from
 * the command line, as bulwark.pc's Cflags give it (-D_DEFAULT_SOURCE). */
#include <stdio.h>

#include <bulwark.h>

int main(void)
{
    printf("%s\n", bw_strerror(BW_ELIMIT));
    return 0;
}
