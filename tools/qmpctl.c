/* qmpctl - inspect running qfleet guests (issue 9; not yet written). */
#include <stdio.h>

int main(void)
{
    fprintf(stderr, "qmpctl: not implemented yet\n");
    return 2;
}
