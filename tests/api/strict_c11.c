/* A program built with a strict -std=c11 -Wall -Wextra -Werror and no
 * feature macro, bulwark.h its first include, compiles (include/bulwark/
 * common.h provides what uv.h needs). Every public header, each alone. */
#include <bulwark.h>

#include <bulwark/cluster.h>
#include <bulwark/router.h>

int main(void)
{
    bw_loop *loop;
    return bw_loop_new(&loop) == 0 ? bw_loop_free(loop) : 1;
}
