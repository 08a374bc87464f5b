/* Hand-written C peers for the symdl benchmarks, loaded with ctypes.
 *
 * Compiled at run time by benchmarks/common.py with the system C compiler
 * (cc -O2 -shared -fPIC) into a temporary directory; no binary is committed.
 *
 *   rosen2_value_and_grad: y = (x2 - x1^2)^2 + (1 - x1)^2 at one point; the
 *       value is returned, both gradient components are written through
 *       pointers (bench_rosen2.py).
 *   rosenN_grad: the gradient of sum_i 100 (x[i+1] - x[i]^2)^2 + (1 - x[i])^2
 *       over n points, one pass over x (bench_rosenN.py).
 */
#include <stddef.h>

double rosen2_value_and_grad(double x1, double x2, double *g1, double *g2)
{
    double r = x2 - x1 * x1;
    double s = 1.0 - x1;
    *g1 = -4.0 * x1 * r - 2.0 * s;
    *g2 = 2.0 * r;
    return r * r + s * s;
}

/* d/dx[i] of term i:   -400 x[i] (x[i+1] - x[i]^2) - 2 (1 - x[i])   (i < n-1)
 * d/dx[i] of term i-1:  200 (x[i] - x[i-1]^2)                        (i > 0)   */
void rosenN_grad(const double *x, double *g, size_t n)
{
    if (n == 0)
        return;
    if (n == 1) {
        g[0] = 0.0;
        return;
    }
    g[0] = -400.0 * x[0] * (x[1] - x[0] * x[0]) - 2.0 * (1.0 - x[0]);
    for (size_t i = 1; i < n - 1; i++) {
        double xi = x[i];
        g[i] = 200.0 * (xi - x[i - 1] * x[i - 1])
             - 400.0 * xi * (x[i + 1] - xi * xi) - 2.0 * (1.0 - xi);
    }
    g[n - 1] = 200.0 * (x[n - 1] - x[n - 2] * x[n - 2]);
}
