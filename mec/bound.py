"""A per-slot upper bound on the phase-1 slot reward over every decision, unequal spectrum splits included.

The oracle (mec.baselines.OraclePolicy) enumerates offload sets and priority orders with an equal spectrum split,
so a policy with an unequal split can exceed it. `spectrum_bound` gives a number no decision can exceed: every
offload set, every set of spectrum weights and every priority order of one server (n_clusters = 1, CPU share 1).

Semantics bounded (mec.simulator): offloader i of the m offloaders gets theta_i = theta_min + (1 - m*theta_min) *
w_i / sum(w), uploads for up_i(theta_i) = d_i / (theta_i*B*log2(1 + p*g_i/(theta_i*B*N0))) and runs c_i/F on the
server; local UE i is worth local_i = w_qos*clip(2 - (c_i/f_i)/D_i, 0, 1) - w_energy*kappa*c_i*f_i^2 and offloader
i is worth w_qos*q_i(e_i) - w_energy*(p*up_i + P*c_i/F), with q_i(e) = clip(2 - e/D_i, 0, 1) of its completion e_i.

Why it is an upper bound:
1. Schedules are sequences. For any priorities the server runs the offloaded tasks in some sequence pi with
   end_j = max(end_{j-1}, r_{pi_j}) + run_{pi_j}, end_0 = server_free_s, r = upload end: when it frees at end_{j-1}
   it starts at once if a task is uploaded (that task has r <= end_{j-1}), else at the earliest upload end, which
   is the release of the task it then picks. So start_j = max(end_{j-1}, r_{pi_j}).
2. Shares satisfy theta_i in [theta_min, 1] and sum(theta) <= 1. For lambda >= 0, adding lambda*(1 - sum(theta))
   >= 0 to the reward and then dropping the sum constraint can only raise the maximum (weak duality):
     U(lambda) = lambda + max over S, pi, theta_i in [theta_min, 1] of
                 sum_{i not in S} local_i + sum_{i in S} [psi_i(theta_i) + w_qos*q_i(end_i)],
     psi_i(theta) = -w_energy*(p*up_i(theta) + P*c_i/F) - lambda*theta.
   Every U(lambda) is >= the reward of every decision; U is convex in lambda (lambda plus a maximum of functions
   affine in lambda) and the bound is the smallest U evaluated (lambda = 0, s, 2s, 4s, ... until U rises, then
   golden section in the bracket; whatever the search finds is valid).
3. Relaxing the start times further: a start s_j may be any time >= end_{j-1} with up_i(theta_i) <= s_j (waiting
   never raises q). Then a share only has to upload by its start, and Psi_i(s) = max{psi_i(theta) : theta in
   [theta_min, 1], up_i(theta) <= s} (-inf if up_i(1) > s) is all that matters. psi_i is concave (up = d/rate with
   rate concave, increasing and > 0 is convex), so Psi_i(s) = psi_i(max(theta*_i, theta_lo_i(s))), where theta*_i
   maximises psi_i on [theta_min, 1] and theta_lo_i(s) is the share whose upload takes s, clamped to [theta_min, 1].
   Computed, both round optimistically. theta*_i is a bisection bracket [a, b] on the sign of psi_i' (per lambda),
   and M_i = psi_i(b) - psi_i'(b)*(b - a) (lowered to psi_i(a) + psi_i'(a)*(b - a) where that is smaller and
   a > 0) is >= max psi_i by concavity (a tangent lies above the function). theta_lo_i(s) is approached from below
   (Newton on the concave rate, whose iterates stay below the root; kept only if its upload, as computed, still
   exceeds s, else bisection; independent of lambda, so once per slot). Psi_i(s) is taken as psi_i(theta_lo) where
   theta_lo >= b (psi_i falls on [b, 1], so a theta_lo from below can only raise it), else as M_i.
   V_U(e), the best sum of psi + w_qos*q over the set U in any sequence ending by e, obeys V_empty(e) = 0 if
   e >= server_free_s else -inf and V_{U+i}(e) = max over s <= e - run_i of V_U(s) + Psi_i(s) + w_qos*q_i(s + run_i).
4. The grid g_k = k*Delta, k = 0..G-1 (G = grid_points), H = g_{G-1} = max_i(2*D_i) + server_free_s, and a last
   bucket [g_{G-1}, inf). V^_U(g_k) >= V_U(g_k) on the grid and V^_U(inf) >= sup_e V_U(e), by induction over U:
   - a start s in bucket [g_k, g_{k+1}] (k <= G-2) is worth at most T_k = V^_U(g_{k+1}) + Psi_i(g_{k+1}) +
     w_qos*q_i(g_k + run_i), since V_U and Psi_i do not decrease in s and q_i does not increase;
   - a start s >= g_{G-1} is worth at most T_{G-1} = V^_U(inf) + Psi_i(inf) + w_qos*q_i(g_{G-1} + run_i), with
     Psi_i(inf) = max psi_i (the q term is 0 there: g_{G-1} + run_i >= 2*D_i);
   - every start is >= 0 = g_0, so the buckets cover them all; a start s <= g_j - run_i lies in a bucket k <=
     j - run_i/Delta, i.e. k <= j - ceil(run_i/Delta), and V^_{U+i}(g_j) = max over those k of T_k (a running
     prefix max), V^_{U+i}(inf) = max over all k of T_k;
   - the base case V^_empty(g_k) = 0 if g_k >= server_free_s else -inf, V^_empty(inf) = 0: a start s >=
     server_free_s in [g_k, g_{k+1}] has g_{k+1} >= server_free_s, so T_k sees the 0 (server_free_s > 0 only moves
     where the -inf ends; H >= server_free_s keeps it on the grid).
   U(lambda) <= lambda + max over U of [sum_{i not in U} local_i + V^_U(inf)], which is what is computed.
   Floating-point rounding is covered by adding 1e-10 * (1 + |bound|).

Looseness: the duality gap of step 2, the finite lambda search and the grid. On the grid each task of a sequence may
start up to Delta earlier than its predecessor's end allows (that end rounds up to g_{k+1}, the start down to g_k),
and the gains add up along the sequence: the j-th task ends at most j*Delta early, so the grid adds at most
w_qos*Delta*sum_j j/D_{pi_j} <= w_qos*Delta*m(m+1)/(2*min D) for m offloaders (w_qos*Delta/D for one UE). At the
default G = 2000 and deadlines 2..4 s (Delta = 4 ms) that is <= 0.056 at m = 7, and far less in practice.
Cost: 2^N*N*G per lambda and `lambda_evals` (20) lambdas per slot: ~20 ms per slot at N = 7.
"""

from __future__ import annotations

import numba
import numpy as np

from mec import physics
from mec.policies import ORACLE_MAX_UE
from mec.simulator import (
    BANDWIDTH_HZ,
    KAPPA,
    NOISE_W_PER_HZ,
    SERVER_CPU_HZ,
    SERVER_POWER_W,
    THETA_MIN,
    TX_POWER_W,
    W_ENERGY,
    W_QOS,
    SlotState,
)

# Points of the start-time grid: Delta = (max(2D) + server_free) / (G - 1), ~4 ms at the default deadlines.
DEFAULT_GRID_POINTS = 2000
# Evaluations of U(lambda) per slot (the bracket's doublings included).
DEFAULT_LAMBDA_EVALS = 20
# Bisection steps for theta_lo and theta* (the bracket shrinks to 2^-60 of [theta_min, 1]).
_BISECTION_STEPS = 60
# Relative margin for floating-point rounding (the simulator sums the same terms in another order).
_ROUNDING_SLACK = 1e-10
_GOLDEN = 0.6180339887498949


@numba.njit(cache=True, inline="always")
def _upload_s(bits, share, bandwidth_hz, snr_num, noise):
    """Upload time at a share, with the simulator's formula (inf at share 0)."""
    if share <= 0.0:
        return np.inf
    return bits / physics.shannon_rate_bps(bandwidth_hz * share, snr_num, noise)


@numba.njit(cache=True, inline="always")
def _marginal(bits, share, bandwidth_hz, snr_num, noise):
    """-d up / d theta = bits * rate' / rate^2 (>= 0, non-increasing in theta; inf at share 0)."""
    if share <= 0.0:
        return np.inf
    band = bandwidth_hz * share
    x = snr_num / (band * noise)
    rate = band * np.log2(1.0 + x)
    d_rate = bandwidth_hz * (np.log2(1.0 + x) - x / ((1.0 + x) * np.log(2.0)))
    return bits * d_rate / (rate * rate)


@numba.njit(cache=True)
def _share_for_upload(bits, g, theta_min, hi, bandwidth_hz, snr_num, noise):
    """A share t <= theta_lo(g), the share whose upload takes exactly g, given up(theta_min) > g >= up(hi).

    Newton on rate(t) = bits/g: rate is concave and increasing, so every Newton iterate lies at or below the root.
    The estimate, lowered by a relative 1e-11, is returned if its upload (as computed) still exceeds g; otherwise
    bisection on [theta_min, hi] returns the lower end of its final bracket."""
    y = bits / g
    t = hi
    for _ in range(20):
        band = bandwidth_hz * t
        x = snr_num / (band * noise)
        rate = band * np.log2(1.0 + x)
        d_rate = bandwidth_hz * (np.log2(1.0 + x) - x / ((1.0 + x) * np.log(2.0)))
        step = (y - rate) / d_rate
        t_new = t + step
        if not t_new > theta_min:
            t_new = theta_min
            if theta_min <= 0.0:
                break
        done = abs(t_new - t) <= 1e-13 * t
        t = t_new
        if done:
            break
    t = min(t, 1.0) * (1.0 - 1e-11)
    if t <= theta_min:
        return theta_min
    if t > 0.0 and _upload_s(bits, t, bandwidth_hz, snr_num, noise) > g:
        return t
    lo = theta_min
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        if _upload_s(bits, mid, bandwidth_hz, snr_num, noise) > g:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-15 * hi:
            break
    return lo


@numba.njit(cache=True)
def _psi(lam, share, up, server_e, tx_power, w_energy):
    energy = 0.0
    if w_energy != 0.0:
        energy = w_energy * (tx_power * up + server_e)
    return -energy - lam * share


@numba.njit(cache=True)
def _dual_value(lam, n, n_grid, delta, server_free, w_qos, w_energy, tx_power, theta_min, bandwidth_hz, noise,
                bits, snr_num, server_e, shift, up_full, theta_lo, up_lo, q_term, local_rest, a_term, v):  # fmt: skip
    """U(lambda) on the grid (module doc, step 4); a_term (N, G) and v (2^N, G + 1) are work arrays."""
    for i in range(n):
        # theta* of psi_i on [theta_min, 1] as a bracket [lo, hi] and an upper bound on max psi_i.
        lo, hi = theta_min, 1.0
        if w_energy * tx_power * _marginal(bits[i], 1.0, bandwidth_hz, snr_num[i], noise) - lam >= 0.0:
            lo = 1.0
        elif w_energy * tx_power * _marginal(bits[i], theta_min, bandwidth_hz, snr_num[i], noise) - lam <= 0.0:
            hi = theta_min
        else:
            for _ in range(_BISECTION_STEPS):
                mid = 0.5 * (lo + hi)
                if w_energy * tx_power * _marginal(bits[i], mid, bandwidth_hz, snr_num[i], noise) - lam > 0.0:
                    lo = mid
                else:
                    hi = mid
        up_hi = _upload_s(bits[i], hi, bandwidth_hz, snr_num[i], noise)
        psi_max = _psi(lam, hi, up_hi, server_e[i], tx_power, w_energy)
        if lo < hi:
            slope_hi = w_energy * tx_power * _marginal(bits[i], hi, bandwidth_hz, snr_num[i], noise) - lam  # <= 0
            psi_max -= slope_hi * (hi - lo)
            if lo > 0.0:
                up_lo_ = _upload_s(bits[i], lo, bandwidth_hz, snr_num[i], noise)
                slope_lo = w_energy * tx_power * _marginal(bits[i], lo, bandwidth_hz, snr_num[i], noise) - lam
                alt = _psi(lam, lo, up_lo_, server_e[i], tx_power, w_energy) + slope_lo * (hi - lo)
                if alt < psi_max:
                    psi_max = alt
        # a_term[i, k] = Psi_i(g_{k+1}) + w_qos*q_i(g_k + run_i); the last bucket takes Psi_i(inf) = max psi_i.
        for k in range(n_grid - 1):
            g = (k + 1) * delta
            if up_full[i] > g:
                a_term[i, k] = -np.inf
                continue
            t = theta_lo[i, k + 1]
            if t >= hi:
                a_term[i, k] = _psi(lam, t, up_lo[i, k + 1], server_e[i], tx_power, w_energy) + q_term[i, k]
            else:
                a_term[i, k] = psi_max + q_term[i, k]
        a_term[i, n_grid - 1] = psi_max + q_term[i, n_grid - 1]
    # Subset DP over the server sequence (the last task of U + i is i).
    for k in range(n_grid):
        v[0, k] = 0.0 if k * delta >= server_free else -np.inf
    v[0, n_grid] = 0.0
    for mask in range(1, 1 << n):
        row = v[mask]
        for k in range(n_grid + 1):
            row[k] = -np.inf
        for i in range(n):
            if not (mask >> i) & 1:
                continue
            prev = v[mask ^ (1 << i)]
            if prev[n_grid] == -np.inf:
                continue
            sh = shift[i]
            a_i = a_term[i]
            running = -np.inf
            for j in range(sh, n_grid):
                t = prev[j - sh + 1] + a_i[j - sh]
                if t > running:
                    running = t
                if running > row[j]:
                    row[j] = running
            for k in range(max(n_grid - sh, 0), n_grid):
                t = prev[k + 1] + a_i[k]
                if t > running:
                    running = t
            if running > row[n_grid]:
                row[n_grid] = running
    best = -np.inf
    for mask in range(1 << n):
        value = local_rest[mask] + v[mask, n_grid]
        if value > best:
            best = value
    return lam + best


@numba.njit(cache=True)
def _bound_kernel(params, data_bits, cycles, deadline_s, gain, cpu_hz, server_free_s, n_grid, n_eval, out):
    bandwidth_hz, noise, tx_power = params[BANDWIDTH_HZ], params[NOISE_W_PER_HZ], params[TX_POWER_W]
    kappa, server_hz, server_power = params[KAPPA], params[SERVER_CPU_HZ], params[SERVER_POWER_W]
    theta_min, w_qos, w_energy = params[THETA_MIN], params[W_QOS], params[W_ENERGY]
    n_batch, n = data_bits.shape
    snr_num = np.empty(n)
    server_e = np.empty(n)
    shift = np.empty(n, dtype=np.int64)
    up_full = np.empty(n)
    theta_lo = np.empty((n, n_grid))
    up_lo = np.empty((n, n_grid))
    q_term = np.empty((n, n_grid))
    local = np.empty(n)
    local_rest = np.empty(1 << n)
    a_term = np.empty((n, n_grid))
    v = np.empty((1 << n, n_grid + 1))
    for b in range(n_batch):
        free = server_free_s[b, 0]
        horizon = free
        for i in range(n):
            horizon = max(horizon, 2.0 * deadline_s[b, i] + free)
        delta = horizon / (n_grid - 1)
        scale = 0.0
        for i in range(n):
            c, f, d = cycles[b, i], cpu_hz[b, i], deadline_s[b, i]
            q = physics.qos_scalar(c / f, d)
            local[i] = w_qos * q - w_energy * physics.local_energy_scalar(c, f, kappa)
            snr_num[i] = tx_power * gain[b, i]
            server_e[i] = server_power * c / server_hz
            run = c / server_hz
            sh = int(np.ceil(run / delta * (1.0 - 1e-12)))
            shift[i] = sh if sh > 0 else 0
            up_full[i] = _upload_s(data_bits[b, i], 1.0, bandwidth_hz, snr_num[i], noise) * (1.0 - 1e-12)
            up_floor = _upload_s(data_bits[b, i], theta_min, bandwidth_hz, snr_num[i], noise)
            for k in range(n_grid):
                g = k * delta
                q = physics.qos_scalar(g + run, d)
                q_term[i, k] = w_qos * q
                # theta_lo(g): the smallest share that uploads by g (lower end of the bracket), clamped.
                if up_floor <= g:
                    theta_lo[i, k] = theta_min
                    up_lo[i, k] = up_floor
                elif up_full[i] > g:
                    theta_lo[i, k] = 1.0
                    up_lo[i, k] = np.inf
                else:
                    hi = theta_lo[i, k - 1] if k > 0 and up_lo[i, k - 1] <= g else 1.0
                    t = _share_for_upload(data_bits[b, i], g, theta_min, hi, bandwidth_hz, snr_num[i], noise)
                    theta_lo[i, k] = t
                    up_lo[i, k] = _upload_s(data_bits[b, i], t, bandwidth_hz, snr_num[i], noise)
            # Marginal value of share at an equal split: the scale the lambda search starts from.
            marg = (w_energy * tx_power + w_qos / d) * _marginal(data_bits[b, i], 1.0 / n, bandwidth_hz,
                                                                   snr_num[i], noise)  # fmt: skip
            if marg > scale and marg < np.inf:
                scale = marg
        for mask in range(1 << n):
            s = 0.0
            for i in range(n):
                if not (mask >> i) & 1:
                    s += local[i]
            local_rest[mask] = s
        if not scale > 0.0:
            scale = 1.0
        scale *= 0.125

        # lambda search: U is convex in lambda >= 0. Bracket from 0 by doubling, then golden section.
        f0 = _dual_value(0.0, n, n_grid, delta, free, w_qos, w_energy, tx_power, theta_min, bandwidth_hz, noise,
                         data_bits[b], snr_num, server_e, shift, up_full, theta_lo, up_lo, q_term, local_rest,
                         a_term, v)  # fmt: skip
        best = f0
        used = 1
        lo, hi = 0.0, scale
        if n > 0 and n_eval > 1:
            f_a, lam_b = f0, scale
            f_b = _dual_value(lam_b, n, n_grid, delta, free, w_qos, w_energy, tx_power, theta_min, bandwidth_hz,
                              noise, data_bits[b], snr_num, server_e, shift, up_full, theta_lo, up_lo, q_term,
                              local_rest, a_term, v)  # fmt: skip
            used += 1
            best = min(best, f_b)
            lam_a = 0.0
            if f_b < f_a:
                hi = lam_b
                while used < n_eval:
                    lam_c = 2.0 * lam_b
                    f_c = _dual_value(lam_c, n, n_grid, delta, free, w_qos, w_energy, tx_power, theta_min,
                                      bandwidth_hz, noise, data_bits[b], snr_num, server_e, shift, up_full,
                                      theta_lo, up_lo, q_term, local_rest, a_term, v)  # fmt: skip
                    used += 1
                    best = min(best, f_c)
                    lo, hi = lam_a, lam_c
                    if f_c >= f_b:
                        break
                    lam_a, f_a, lam_b, f_b = lam_b, f_b, lam_c, f_c
            x1 = hi - _GOLDEN * (hi - lo)
            x2 = lo + _GOLDEN * (hi - lo)
            f1 = f2 = np.inf
            if used < n_eval:
                f1 = _dual_value(x1, n, n_grid, delta, free, w_qos, w_energy, tx_power, theta_min, bandwidth_hz,
                                 noise, data_bits[b], snr_num, server_e, shift, up_full, theta_lo, up_lo, q_term,
                                 local_rest, a_term, v)  # fmt: skip
                used += 1
                best = min(best, f1)
            if used < n_eval:
                f2 = _dual_value(x2, n, n_grid, delta, free, w_qos, w_energy, tx_power, theta_min, bandwidth_hz,
                                 noise, data_bits[b], snr_num, server_e, shift, up_full, theta_lo, up_lo, q_term,
                                 local_rest, a_term, v)  # fmt: skip
                used += 1
                best = min(best, f2)
            while used < n_eval:
                if f1 <= f2:
                    hi, x2, f2 = x2, x1, f1
                    x1 = hi - _GOLDEN * (hi - lo)
                    f1 = _dual_value(x1, n, n_grid, delta, free, w_qos, w_energy, tx_power, theta_min,
                                     bandwidth_hz, noise, data_bits[b], snr_num, server_e, shift, up_full, theta_lo,
                                     up_lo, q_term, local_rest, a_term, v)  # fmt: skip
                    best = min(best, f1)
                else:
                    lo, x1, f1 = x1, x2, f2
                    x2 = lo + _GOLDEN * (hi - lo)
                    f2 = _dual_value(x2, n, n_grid, delta, free, w_qos, w_energy, tx_power, theta_min,
                                     bandwidth_hz, noise, data_bits[b], snr_num, server_e, shift, up_full, theta_lo,
                                     up_lo, q_term, local_rest, a_term, v)  # fmt: skip
                    best = min(best, f2)
                used += 1
        out[b] = best + _ROUNDING_SLACK * (1.0 + abs(best))


def spectrum_bound(
    state: SlotState, grid_points: int = DEFAULT_GRID_POINTS, *, lambda_evals: int = DEFAULT_LAMBDA_EVALS
) -> np.ndarray:
    """(B,) upper bounds on the slot reward of every phase-1 decision of each slot (module doc).

    grid_points is G of the start-time grid (a finer grid only tightens the bound); lambda_evals the evaluations
    of the dual function per slot (more only tighten it)."""
    n = state.n_ue
    if state.n_clusters != 1:
        raise ValueError(f"spectrum_bound: n_clusters {state.n_clusters}; allowed 1 (phase 1, one server)")
    if n > ORACLE_MAX_UE:
        raise ValueError(f"spectrum_bound: n_ue {n}; allowed at most {ORACLE_MAX_UE} (ORACLE_MAX_UE)")
    if int(grid_points) != grid_points or grid_points < 2:
        raise ValueError(f"spectrum_bound: grid_points {grid_points!r}; allowed an integer >= 2")
    if int(lambda_evals) != lambda_evals or lambda_evals < 1:
        raise ValueError(f"spectrum_bound: lambda_evals {lambda_evals!r}; allowed an integer >= 1")
    out = np.empty(state.batch_size)
    as_float = lambda x: np.ascontiguousarray(x, dtype=float)  # noqa: E731
    _bound_kernel(
        state.params.kernel, as_float(state.data_bits), as_float(state.cycles), as_float(state.deadline_s),
        as_float(state.gain), as_float(state.cpu_hz), as_float(state.server_free_s), int(grid_points),
        int(lambda_evals), out,
    )  # fmt: skip
    return out
