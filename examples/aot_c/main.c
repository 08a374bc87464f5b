/* Call the symdl-exported gradient of the seed's toy function from C.
 *
 *     y = (x2 - x1^2)^2 + (1 - x1)^2
 *
 * build.py exports it with
 *
 *     symdl.export(toy_grad, 2.0, 2.0, path="build/libtoy.so", name="toy_grad")
 *
 * which writes libtoy.so and libtoy.h.  The header declares
 *
 *     int toy_grad(const double *in0, const double *in1,
 *                  double *out0, double *out1, double *out2);
 *
 * one pointer per input (x1, x2) and per output (y, dy/dx1, dy/dx2), each a
 * contiguous C-order buffer of the compiled shape (here one double each).
 * It returns 0 on success.  No Python is involved at run time.
 *
 * Usage: toy_main [x1 x2]      (default: the seed's start point 2 2)
 */
#include <stdio.h>
#include <stdlib.h>

#include "libtoy.h"

/* The library was exported for scalar (one-element) float64 inputs. */
#if TOY_GRAD_IN0_SIZE != 1 || TOY_GRAD_IN1_SIZE != 1 || TOY_GRAD_OUT0_SIZE != 1 || \
    TOY_GRAD_OUT1_SIZE != 1 || TOY_GRAD_OUT2_SIZE != 1
#error "libtoy.h: expected one-element inputs and outputs"
#endif

static int parse(const char *text, double *value) {
    char *end = NULL;
    *value = strtod(text, &end);
    return end != text && *end == '\0';
}

int main(int argc, char **argv) {
    double x1 = 2.0, x2 = 2.0;
    double y = 0.0, dydx1 = 0.0, dydx2 = 0.0;

    if (argc == 3) {
        if (!parse(argv[1], &x1) || !parse(argv[2], &x2)) {
            fprintf(stderr, "toy_main: x1 and x2 must be numbers, got '%s' '%s'\n", argv[1], argv[2]);
            return 2;
        }
    } else if (argc != 1) {
        fprintf(stderr, "usage: %s [x1 x2]\n", argv[0]);
        return 2;
    }

    int rc = toy_grad(&x1, &x2, &y, &dydx1, &dydx2);
    if (rc != 0) {
        fprintf(stderr, "toy_grad failed with code %d\n", rc);
        return rc;
    }
    printf("x1 = %.17g x2 = %.17g\n", x1, x2);
    printf("y = %.17g dy/dx1 = %.17g dy/dx2 = %.17g\n", y, dydx1, dydx2);
    return rc;
}
