"""The closed-form step, unrolled: generated from kernel/disease.py's coefficient
pattern by scripts/generate_step.py. Do not edit; regenerate.
"""

from typing import Any

import numpy as np


def step_one(coef: Any, y: Any, q: Any, w: Any, xs: Any, xl: Any, xd: Any, z: Any, f: Any, l: Any, fe: Any, le: Any, v: Any, e: Any, j: Any, s: Any, c: Any, g: Any) -> tuple[Any, ...]:
    """One patient: the stepped states in ``disease.STEPPED`` order."""
    o_y = y * 0.0
    o_q = q * 0.0
    o_w = w * 0.0
    o_xs = xs * 0.0
    o_xl = xl * 0.0
    o_xd = xd * 0.0
    o_j = j * 1.0
    o_y = o_y + coef[0] * y
    o_y = o_y + coef[1] * z
    o_y = o_y + coef[2] * e
    o_y = o_y + coef[3] * s
    o_y = o_y + coef[4] * c
    o_y = o_y + g * (coef[5] * fe)
    o_y = o_y + g * (coef[6] * le)
    o_y = o_y + g * (coef[7] * v)
    o_q = o_q + coef[8] * y
    o_q = o_q + coef[9] * q
    o_q = o_q + coef[10] * z
    o_q = o_q + coef[11] * e
    o_q = o_q + coef[12] * s
    o_q = o_q + coef[13] * c
    o_q = o_q + g * (coef[14] * fe)
    o_q = o_q + g * (coef[15] * le)
    o_q = o_q + g * (coef[16] * v)
    o_w = o_w + coef[17] * y
    o_w = o_w + coef[18] * w
    o_w = o_w + coef[19] * z
    o_w = o_w + coef[20] * e
    o_w = o_w + coef[21] * s
    o_w = o_w + coef[22] * c
    o_w = o_w + g * (coef[23] * fe)
    o_w = o_w + g * (coef[24] * le)
    o_w = o_w + g * (coef[25] * v)
    o_xs = o_xs + coef[26] * y
    o_xs = o_xs + coef[27] * xs
    o_xs = o_xs + coef[28] * z
    o_xs = o_xs + coef[29] * e
    o_xs = o_xs + coef[30] * s
    o_xs = o_xs + coef[31] * c
    o_xs = o_xs + g * (coef[32] * fe)
    o_xs = o_xs + g * (coef[33] * le)
    o_xs = o_xs + g * (coef[34] * v)
    o_xl = o_xl + coef[35] * y
    o_xl = o_xl + coef[36] * xl
    o_xl = o_xl + coef[37] * z
    o_xl = o_xl + coef[38] * e
    o_xl = o_xl + coef[39] * s
    o_xl = o_xl + coef[40] * c
    o_xl = o_xl + g * (coef[41] * fe)
    o_xl = o_xl + g * (coef[42] * le)
    o_xl = o_xl + g * (coef[43] * v)
    o_xd = o_xd + coef[44] * y
    o_xd = o_xd + coef[45] * xd
    o_xd = o_xd + coef[46] * z
    o_xd = o_xd + coef[47] * e
    o_xd = o_xd + coef[48] * s
    o_xd = o_xd + coef[49] * c
    o_xd = o_xd + g * (coef[50] * fe)
    o_xd = o_xd + g * (coef[51] * le)
    o_xd = o_xd + g * (coef[52] * v)
    o_j = o_j + coef[53] * y
    o_j = o_j + coef[54] * z
    o_j = o_j + coef[55] * e
    o_j = o_j + coef[56] * s
    o_j = o_j + coef[57] * c
    o_j = o_j + g * (coef[58] * fe)
    o_j = o_j + g * (coef[59] * le)
    o_j = o_j + g * (coef[60] * v)
    return (o_y, o_q, o_w, o_xs, o_xl, o_xd, coef[61] * z, coef[62] * f, coef[63] * l, coef[64] * fe, coef[65] * le, coef[66] * fe + coef[67] * le + coef[68] * v, coef[69] * e + (1.0 - coef[69]) * c, o_j)


def step_rows(table: Any, rows: Any, a_y: Any, a_q: Any, a_w: Any, a_xs: Any, a_xl: Any, a_xd: Any, a_z: Any, a_f: Any, a_l: Any, a_fe: Any, a_le: Any, a_v: Any, a_e: Any, a_j: Any, a_s: Any, a_c: Any, a_g: Any) -> tuple[np.ndarray, ...]:
    """Patient i steps with coefficients ``table[rows[i]]``: arrays in ``STEPPED``
    order (compiled by numba in ``simulator._loops``, which makes ``step_one``
    callable from it)."""
    n = rows.size
    r_y = np.empty(n)
    r_q = np.empty(n)
    r_w = np.empty(n)
    r_xs = np.empty(n)
    r_xl = np.empty(n)
    r_xd = np.empty(n)
    r_z = np.empty(n)
    r_f = np.empty(n)
    r_l = np.empty(n)
    r_fe = np.empty(n)
    r_le = np.empty(n)
    r_v = np.empty(n)
    r_e = np.empty(n)
    r_j = np.empty(n)
    for i in range(n):
        res = step_one(table[rows[i]], a_y[i], a_q[i], a_w[i], a_xs[i], a_xl[i], a_xd[i], a_z[i], a_f[i], a_l[i], a_fe[i], a_le[i], a_v[i], a_e[i], a_j[i], a_s[i], a_c[i], a_g[i])
        r_y[i] = res[0]
        r_q[i] = res[1]
        r_w[i] = res[2]
        r_xs[i] = res[3]
        r_xl[i] = res[4]
        r_xd[i] = res[5]
        r_z[i] = res[6]
        r_f[i] = res[7]
        r_l[i] = res[8]
        r_fe[i] = res[9]
        r_le[i] = res[10]
        r_v[i] = res[11]
        r_e[i] = res[12]
        r_j[i] = res[13]
    return (r_y, r_q, r_w, r_xs, r_xl, r_xd, r_z, r_f, r_l, r_fe, r_le, r_v, r_e, r_j)
