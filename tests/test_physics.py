"""Tests for mec.physics: every formula checked against numbers worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mec import physics

N0 = physics.dbm_to_w(-174.0)  # W/Hz


# --------------------------------------------------------------------------- units


def test_dbm_to_w():
    # -174 dBm/Hz = 10^((-174 - 30)/10) = 10^-20.4 = 3.981e-21 W/Hz
    assert N0 == pytest.approx(3.981071705534972e-21, rel=1e-12)
    # 23 dBm = 10^(-0.7) W = 0.19953 W; 30 dBm = 1 W; 0 dBm = 1 mW
    np.testing.assert_allclose(physics.dbm_to_w([23.0, 30.0, 0.0]), [0.199526231496888, 1.0, 1e-3], rtol=1e-12)


# --------------------------------------------------------------------------- channel


def test_pathloss_3gpp_at_reference_distances():
    # d = 1000 m: log10(1) = 0 -> loss = 128.1 dB exactly -> gain 10^-12.81
    # d = 10 m: log10(0.01) = -2 -> loss = 128.1 - 75.2 = 52.9 dB -> gain 10^-5.29
    gain = physics.channel_gain_pathloss_3gpp(np.array([1000.0, 10.0]))
    loss_db = -10.0 * np.log10(gain)
    np.testing.assert_allclose(loss_db, [128.1, 52.9], rtol=0, atol=1e-10)
    np.testing.assert_allclose(gain, [1.5488166189124812e-13, 5.128613839913648e-06], rtol=1e-10)


def test_pathloss_slope_is_37_6_db_per_decade():
    # 100 m -> 1000 m: one decade of distance, 37.6 dB more loss: gain ratio 10^3.76
    g100, g1000 = physics.channel_gain_pathloss_3gpp([100.0, 1000.0])
    assert g100 / g1000 == pytest.approx(10**3.76, rel=1e-10)


def test_inverse_square():
    # 1/d^2: 10 m -> 0.01, 50 m -> 4e-4, 2 m -> 0.25
    np.testing.assert_allclose(physics.channel_gain_inverse_square([10.0, 50.0, 2.0]), [0.01, 4e-4, 0.25], rtol=1e-15)


def test_channel_gain_dispatch():
    d = np.array([12.0, 37.0])
    np.testing.assert_array_equal(physics.channel_gain(d, "pathloss_3gpp"), physics.channel_gain_pathloss_3gpp(d))
    np.testing.assert_array_equal(physics.channel_gain(d, "inverse_square"), 1.0 / d**2)


def test_channel_gain_unknown_model_raises():
    with pytest.raises(ValueError, match="free_space"):
        physics.channel_gain(10.0, "free_space")


# --------------------------------------------------------------------------- uplink


def test_rate_by_hand():
    # B*theta = 20e6 * 0.5 = 1e7 Hz; SNR = p*g / (B*theta*N0) = 0.2 * 1e-8 / (1e7 * 3.981072e-21)
    #   = 2e-9 / 3.981072e-14 = 50237.7286
    # log2(1 + 50237.7286) = 15.6165123; rate = 1e7 * 15.6165123 = 1.56165123e8 bit/s
    rate = physics.rate_bps(20e6, 0.5, 0.2, 1e-8, N0)
    assert rate == pytest.approx(1.5616512334580615e8, rel=1e-10)
    # 40 Mbit at that rate: 40e6 / 1.56165e8 = 0.256139 s; radio energy 0.2 W * 0.256139 s = 0.0512279 J
    t = physics.tx_time_s(40e6, rate)
    assert t == pytest.approx(40e6 / 1.5616512334580615e8, rel=1e-10)
    assert t == pytest.approx(0.2561392, rel=1e-6)
    assert physics.tx_energy_j(0.2, t) == pytest.approx(0.05122784, rel=1e-6)


def test_rate_is_vectorised_over_shares():
    # full band: 2e7 * log2(1 + 2e-9 / (2e7 * N0)) = 2e7 * log2(1 + 25118.864) = 2e7 * 14.616541 = 2.9233082e8
    rates = physics.rate_bps(20e6, np.array([1.0, 0.5, 0.0]), 0.2, 1e-8, N0)
    assert rates[0] == pytest.approx(2e7 * math.log2(1 + 2e-9 / (2e7 * 3.981071705534972e-21)), rel=1e-12)
    assert rates[0] == pytest.approx(2.9233082e8, rel=1e-7)
    assert rates[1] == pytest.approx(1.5616512334580615e8, rel=1e-10)
    assert rates[2] == 0.0


def test_zero_share_gives_zero_rate_and_infinite_tx_time():
    with np.errstate(all="raise"):  # no warnings leak out either
        rate = physics.rate_bps(20e6, np.array([0.0, 0.25]), 0.2, np.array([1e-8, 1e-8]), N0)
        t = physics.tx_time_s(np.array([1e6, 1e6]), rate)
    assert rate[0] == 0.0 and rate[1] > 0.0
    assert t[0] == np.inf
    assert np.isfinite(t[1])


def test_tx_energy_is_power_times_time():
    # 0.2 W * [0, 1.5, 3] s = [0, 0.3, 0.6] J
    np.testing.assert_allclose(physics.tx_energy_j(0.2, [0.0, 1.5, 3.0]), [0.0, 0.3, 0.6], rtol=1e-15)


# --------------------------------------------------------------------------- computation


def test_local_time_and_energy():
    # C = 2e9 cycles at f = 1e9 Hz: 2 s; energy kappa*C*f^2 = 1e-27 * 2e9 * 1e18 = 2 J
    assert physics.local_time_s(2e9, 1e9) == pytest.approx(2.0, rel=1e-15)
    assert physics.local_energy_j(2e9, 1e9, 1e-27) == pytest.approx(2.0, rel=1e-12)
    # C = 3e9 at 1.5e9 Hz: 2 s; 1e-27 * 3e9 * 2.25e18 = 6.75 J
    assert physics.local_time_s(3e9, 1.5e9) == pytest.approx(2.0, rel=1e-15)
    assert physics.local_energy_j(3e9, 1.5e9, 1e-27) == pytest.approx(6.75, rel=1e-12)


def test_server_time_with_share():
    # 3e9 cycles on the whole 6 GHz: 0.5 s; on a share 0.25 (1.5 GHz): 2 s
    assert physics.server_time_s(3e9, 6e9) == pytest.approx(0.5, rel=1e-15)
    assert physics.server_time_s(3e9, 6e9, 0.25) == pytest.approx(2.0, rel=1e-15)
    np.testing.assert_allclose(physics.server_time_s(np.array([3e9, 3e9]), 6e9, np.array([1.0, 0.5])), [0.5, 1.0])


def test_server_energy_is_independent_of_share():
    # P * C / F = 5 W * 3e9 / 6e9 = 2.5 J, i.e. 5 W over the 0.5 s a full CPU needs; on a share 0.25 the task runs
    # 2 s at 0.25 * 5 W, the same 2.5 J.
    e = physics.server_energy_j(3e9, 6e9, 5.0)
    assert e == pytest.approx(2.5, rel=1e-15)
    assert e == pytest.approx(5.0 * physics.server_time_s(3e9, 6e9, 1.0), rel=1e-15)
    assert e == pytest.approx(0.25 * 5.0 * physics.server_time_s(3e9, 6e9, 0.25), rel=1e-15)


# --------------------------------------------------------------------------- QoS


def test_qos_piecewise():
    # D = 2: t = 1 -> 1; t = 2 (= D) -> 1; t = 3 (1.5 D) -> 2 - 1.5 = 0.5; t = 3.5 -> 0.25; t = 4 (2 D) -> 0;
    # t = 5 -> 0; t = inf -> 0
    t = np.array([0.0, 1.0, 2.0, 3.0, 3.5, 4.0, 5.0, np.inf])
    np.testing.assert_allclose(physics.qos(t, 2.0), [1.0, 1.0, 1.0, 0.5, 0.25, 0.0, 0.0, 0.0], rtol=0, atol=1e-15)


def test_qos_per_task_deadlines():
    # t = 3 against D = [2, 3, 4]: 2 - 1.5 = 0.5; 1; 1
    np.testing.assert_allclose(physics.qos(3.0, np.array([2.0, 3.0, 4.0])), [0.5, 1.0, 1.0])


# --------------------------------------------------------------------------- shares


def test_floor_shares_single_active_gets_everything():
    s = physics.floor_shares(np.array([0.3, 5.0, 2.0]), np.array([False, True, False]), 0.1)
    np.testing.assert_allclose(s, [0.0, 1.0, 0.0], rtol=0, atol=1e-15)


def test_floor_shares_floor_is_active():
    # rest = 1 - 2 * 0.1 = 0.8; shares 0.1 + 0.8 * 1/(1 + 1e-9) ~ 0.9 and 0.1 + 0.8 * 1e-9 ~ 0.1
    s = physics.floor_shares(np.array([1.0, 1e-9]), np.array([True, True]), 0.1)
    np.testing.assert_allclose(s, [0.9, 0.1], rtol=1e-8)
    assert s[1] >= 0.1


def test_floor_shares_weighted_by_hand():
    # active 0, 1, 3 with weights 1, 2, 5 (sum 8), floor 0.05: rest = 1 - 3 * 0.05 = 0.85
    # shares 0.05 + 0.85/8 = 0.15625; 0.05 + 0.85*2/8 = 0.2625; 0.05 + 0.85*5/8 = 0.58125; inactive 2 -> 0
    s = physics.floor_shares(np.array([1.0, 2.0, 9.0, 5.0]), np.array([True, True, False, True]), 0.05)
    np.testing.assert_allclose(s, [0.15625, 0.2625, 0.0, 0.58125], rtol=1e-12)


def test_floor_shares_all_zero_weights_split_equally():
    # three active entries, all weights 0: 1/3 each (the floor does not change an equal split)
    s = physics.floor_shares(np.array([0.0, 0.0, 0.0, 0.0]), np.array([True, True, False, True]), 0.1)
    np.testing.assert_allclose(s, [1 / 3, 1 / 3, 0.0, 1 / 3], rtol=1e-12)


def test_floor_shares_no_active_is_all_zero():
    s = physics.floor_shares(np.array([1.0, 2.0]), np.array([False, False]), 0.1)
    np.testing.assert_array_equal(s, [0.0, 0.0])


def test_floor_shares_rows_sum_to_one_among_active():
    rng = np.random.default_rng(7)
    weights = rng.uniform(0.0, 3.0, size=(200, 6))
    active = rng.random((200, 6)) < 0.6
    active[:, 0] = True  # at least one active per row
    s = physics.floor_shares(weights, active, 0.02)
    np.testing.assert_allclose(s.sum(axis=1), 1.0, rtol=1e-12)
    assert np.all(s[~active] == 0.0)
    assert np.all(s[active] >= 0.02 - 1e-15)


def test_cpu_shares_is_floor_shares_with_every_cluster_active():
    # phi_min = 0.1, weights (1, 3): 0.1 + 0.8 * 1/4 = 0.3 and 0.1 + 0.8 * 3/4 = 0.7.
    shares = physics.cpu_shares(np.array([[1.0, 3.0]]), 0.1)
    np.testing.assert_allclose(shares, [[0.3, 0.7]])
    weights = np.array([[0.2, 1.0, 5.0], [1.0, 1.0, 1.0]])
    np.testing.assert_allclose(
        physics.cpu_shares(weights, 0.05), physics.floor_shares(weights, np.ones_like(weights, bool), 0.05)
    )
