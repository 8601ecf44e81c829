"""Tests for mec.simulator: hand-made slots event by event, kernel vs reference, validation, the Simulator class.

Conventions of the hand-made slots: server 6 GHz / 5 W, 20 MHz, 0.2 W transmit power, reward 1.0*QoS - 0.1*J
(defaults). Data sizes are chosen as rate * T so that an upload ends at exactly the T written in the test.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mec import physics
from mec.config import config_from_dict
from mec.scenario import EpisodeBatch, PhaseSetup, episode_seeds, sample_episodes
from mec.simulator import (
    TASK_FIELDS,
    Decisions,
    SimParams,
    Simulator,
    SlotState,
    resolve_slot,
    resolve_slot_reference,
)

RESOLVERS = pytest.mark.parametrize("resolve", [resolve_slot, resolve_slot_reference], ids=["kernel", "reference"])
G = 1e-8  # channel gain of every hand-made UE
NAN = np.nan


def decisions(offload, priority, spectrum_weight=None, cpu_weight=(1.0,)):
    offload = np.array([offload], dtype=bool)
    sw = np.ones(offload.shape) if spectrum_weight is None else np.array([spectrum_weight], dtype=float)
    return Decisions(offload, sw, np.array([priority], dtype=float), np.array([cpu_weight], dtype=float))


def check(result, field, expected, rel=1e-9):
    np.testing.assert_allclose(getattr(result, field)[0], expected, rtol=rel, atol=1e-12, equal_nan=True)


# --------------------------------------------------------------------------- hand-made slots


@RESOLVERS
def test_server_waits_for_the_next_release(resolve, make_params, make_state, upload_bits):
    # UE0, UE1 offload (equal spectrum: theta = 0.01 + 0.98/2 = 0.5 each), UE2 runs locally.
    # Uploads end at 1.0 s and 3.0 s; 3e9 cycles run 3e9/6e9 = 0.5 s on the server.
    # Server: UE0 1.0 -> 1.5, idle 1.5 -> 3.0 (nothing uploaded), UE1 3.0 -> 3.5.
    # UE2 local: 2e9 / 1e9 = 2.0 s, kappa*C*f^2 = 1e-27*2e9*1e18 = 2 J.
    # QoS with D = (2, 2.5, 4): 1; 2 - 3.5/2.5 = 0.6; 1.
    # Energy: tx 0.2*1 = 0.2, 0.2*3 = 0.6; server 5*3e9/6e9 = 2.5 each; local 2. Sum 7.8 J.
    # Reward 2.6 - 0.1*7.8 = 1.82.
    p = make_params()
    state = make_state(
        p,
        data_bits=[upload_bits(p, G, 0.5, 1.0), upload_bits(p, G, 0.5, 3.0), 1e7],
        cycles=[3e9, 3e9, 2e9],
        deadline_s=[2.0, 2.5, 4.0],
        cpu_hz=[1e9, 1e9, 1e9],
    )
    r = resolve(state, decisions([True, True, False], [1.0, 0.0, 0.0]))
    check(r, "spectrum_share", [0.5, 0.5, 0.0])
    check(r, "upload_end_s", [1.0, 3.0, NAN])
    check(r, "exec_start_s", [1.0, 3.0, NAN])
    check(r, "exec_end_s", [1.5, 3.5, NAN])
    check(r, "completion_time_s", [1.5, 3.5, 2.0])
    check(r, "qos", [1.0, 0.6, 1.0])
    check(r, "tx_energy_j", [0.2, 0.6, 0.0])
    check(r, "server_energy_j", [2.5, 2.5, 0.0])
    check(r, "local_energy_j", [0.0, 0.0, 2.0])
    np.testing.assert_allclose(r.energy_j[0], [2.7, 3.1, 2.0], rtol=1e-9)
    np.testing.assert_allclose(r.reward, [1.82], rtol=1e-9)
    np.testing.assert_array_equal(r.deadline_met[0], [True, False, True])
    np.testing.assert_array_equal(r.server_free_next_s, [[0.0]])
    np.testing.assert_array_equal(r.cpu_share, [[1.0]])


@RESOLVERS
def test_late_high_priority_task_neither_preempts_nor_is_waited_for(resolve, make_params, make_state, upload_bits):
    # Three offloaders, equal spectrum 1/3 each. Uploads end: UE0 1.5 (priority 10), UE1 1.0 (priority 1),
    # UE2 1.2 (priority 0). Run times: UE0 3e9 -> 0.5 s, UE1 9e9 -> 1.5 s, UE2 3e9 -> 0.5 s.
    # t = 1.0: only UE1 is uploaded -> it starts (the server does not hold out for UE0) and runs 1.0 -> 2.5;
    # UE0 arrives at 1.5 and does not preempt. t = 2.5: UE0 and UE2 ready, UE0 (10 > 0) 2.5 -> 3.0, UE2 3.0 -> 3.5.
    # QoS with D = 2: UE0 2 - 3/2 = 0.5, UE1 2 - 2.5/2 = 0.75, UE2 2 - 3.5/2 = 0.25; sum 1.5.
    # Energy: tx 0.2*(1.5 + 1.0 + 1.2) = 0.74; server 5*(3 + 9 + 3)/6 = 12.5; sum 13.24 J.
    # Reward 1.5 - 1.324 = 0.176.
    p = make_params()
    third = 1.0 / 3.0
    state = make_state(
        p,
        data_bits=[upload_bits(p, G, third, t) for t in (1.5, 1.0, 1.2)],
        cycles=[3e9, 9e9, 3e9],
        deadline_s=[2.0, 2.0, 2.0],
    )
    r = resolve(state, decisions([True, True, True], [10.0, 1.0, 0.0]))
    check(r, "spectrum_share", [third] * 3)
    check(r, "upload_end_s", [1.5, 1.0, 1.2])
    check(r, "exec_start_s", [2.5, 1.0, 3.0])
    check(r, "exec_end_s", [3.0, 2.5, 3.5])
    check(r, "completion_time_s", [3.0, 2.5, 3.5])
    check(r, "qos", [0.5, 0.75, 0.25])
    check(r, "tx_energy_j", [0.3, 0.2, 0.24])
    check(r, "server_energy_j", [2.5, 7.5, 2.5])
    check(r, "local_energy_j", [0.0, 0.0, 0.0])
    np.testing.assert_allclose(r.reward, [0.176], rtol=1e-9)


@RESOLVERS
@pytest.mark.parametrize(
    ("priority", "starts"),
    [
        # all equal: UE order 0, 1, 2 although UE1 (0.5 s) and UE2 (0.8 s) uploaded before UE0 (1.0 s)
        ([5.0, 5.0, 5.0], [2.0, 2.5, 3.0]),
        # UE1 and UE2 tie at the top: UE1 (lower index) first, then UE2, then UE0
        ([3.0, 7.0, 7.0], [3.0, 2.0, 2.5]),
        # UE0 and UE2 tie at the top: UE0, UE2, then UE1
        ([7.0, 3.0, 7.0], [2.0, 3.0, 2.5]),
    ],
)
def test_priority_ties_go_to_the_lower_ue_index(resolve, priority, starts, make_params, make_state, upload_bits):
    # Server busy (carried over) until 2.0; uploads end at 1.0, 0.5, 0.8, so all three are ready at 2.0.
    # Each task 3e9 cycles = 0.5 s: starts at 2.0, 2.5, 3.0 in the order the priorities give.
    p = make_params()
    third = 1.0 / 3.0
    state = make_state(
        p,
        data_bits=[upload_bits(p, G, third, t) for t in (1.0, 0.5, 0.8)],
        cycles=[3e9, 3e9, 3e9],
        deadline_s=[4.0, 4.0, 4.0],
        server_free_s=[[2.0]],
    )
    r = resolve(state, decisions([True, True, True], priority))
    check(r, "upload_end_s", [1.0, 0.5, 0.8])
    check(r, "exec_start_s", starts)
    check(r, "exec_end_s", np.add(starts, 0.5))


@RESOLVERS
def test_ties_with_equal_uploads_on_an_idle_server(resolve, make_params, make_state, upload_bits):
    # UE0 and UE1 upload identical data over identical channels: both end at 1.0 exactly, same priority.
    # UE0 (lower index) runs 1.0 -> 1.5, UE1 1.5 -> 2.0.
    p = make_params()
    bits = upload_bits(p, G, 0.5, 1.0)
    state = make_state(p, data_bits=[bits, bits], cycles=[3e9, 3e9], deadline_s=[4.0, 4.0])
    r = resolve(state, decisions([True, True], [0.0, 0.0]))
    assert r.upload_end_s[0, 0] == r.upload_end_s[0, 1]
    check(r, "exec_start_s", [1.0, 1.5])
    check(r, "exec_end_s", [1.5, 2.0])


@RESOLVERS
def test_phase2_clusters_run_in_parallel_on_floored_cpu_shares(resolve, make_params, make_state, upload_bits):
    # K = 2, phi_min = 0.1, cpu weights (1, 3): phi = 0.1 + (1 - 2*0.1) * (1/4, 3/4) = (0.3, 0.7)
    # -> 1.8 GHz and 4.2 GHz. UE0 in cluster 0; UE1, UE2 in cluster 1. Spectrum 1/3 each.
    # Uploads end 0.5, 0.5, 0.25.
    # Cluster 0: UE0 1.8e9 / 1.8e9 = 1.0 s: 0.5 -> 1.5.
    # Cluster 1: UE2 2.1e9 / 4.2e9 = 0.5 s: 0.25 -> 0.75; UE1 4.2e9 / 4.2e9 = 1.0 s: 0.75 -> 1.75
    # (overlaps UE0 on the other partition).
    # QoS with D = 1: 2 - 1.5 = 0.5, 2 - 1.75 = 0.25, 1 (0.75 <= 1); sum 1.75.
    # Server energy P*C/F, independent of the share: 5*1.8/6 = 1.5, 5*4.2/6 = 3.5, 5*2.1/6 = 1.75.
    # tx 0.2*(0.5 + 0.5 + 0.25) = 0.25; sum 7.0 J. Reward 1.75 - 0.7 = 1.05.
    p = make_params(phase=2, n=2, phi_min=0.1)
    assert p.n_clusters == 2
    third = 1.0 / 3.0
    state = make_state(
        p,
        data_bits=[upload_bits(p, G, third, t) for t in (0.5, 0.5, 0.25)],
        cycles=[1.8e9, 4.2e9, 2.1e9],
        deadline_s=[1.0, 1.0, 1.0],
        cluster=[0, 1, 1],
    )
    r = resolve(state, decisions([True, True, True], [0.0, 0.0, 0.0], cpu_weight=(1.0, 3.0)))
    np.testing.assert_allclose(r.cpu_share, [[0.3, 0.7]], rtol=1e-12)
    check(r, "exec_start_s", [0.5, 0.75, 0.25])
    check(r, "exec_end_s", [1.5, 1.75, 0.75])
    check(r, "qos", [0.5, 0.25, 1.0])
    check(r, "server_energy_j", [1.5, 3.5, 1.75])
    check(r, "tx_energy_j", [0.1, 0.1, 0.05])
    np.testing.assert_allclose(r.reward, [1.05], rtol=1e-9)
    np.testing.assert_array_equal(r.server_free_next_s, [[0.0, 0.0]])


@RESOLVERS
def test_spectrum_weights_and_floor(resolve, make_params, make_state):
    # theta_min = 0.1, offloaders UE0, UE2 with weights 1 and 3 (UE1 local, its weight ignored):
    # rest = 1 - 2*0.1 = 0.8; theta = 0.1 + 0.8/4 = 0.3 and 0.1 + 0.8*3/4 = 0.7
    p = make_params(theta_min=0.1)
    state = make_state(p, data_bits=[1e7, 1e7, 1e7], cycles=[2e9] * 3, deadline_s=[3.0] * 3)
    r = resolve(state, decisions([True, False, True], [0.0, 0.0, 0.0], spectrum_weight=[1.0, 99.0, 3.0]))
    check(r, "spectrum_share", [0.3, 0.0, 0.7])
    expected_rate = physics.rate_bps(20e6, np.array([0.3, 0.7]), 0.2, G, physics.dbm_to_w(-174.0))
    check(r, "rate_bps", [expected_rate[0], 0.0, expected_rate[1]])
    check(r, "upload_end_s", [1e7 / expected_rate[0], NAN, 1e7 / expected_rate[1]])


@RESOLVERS
def test_local_tasks_have_nan_exec_times_and_no_radio_or_server_energy(resolve, make_params, make_state):
    # All local: C/f = 3e9/1.5e9 = 2 s and 1.5e9/0.5e9 = 3 s; energy 1e-27*3e9*2.25e18 = 6.75 J and
    # 1e-27*1.5e9*0.25e18 = 0.375 J. QoS with D = 1.6, 2: 2 - 2/1.6 = 0.75, 2 - 3/2 = 0.5.
    # Reward 1.25 - 0.1*7.125 = 0.5375.
    p = make_params()
    state = make_state(p, data_bits=[5e7, 5e7], cycles=[3e9, 1.5e9], deadline_s=[1.6, 2.0], cpu_hz=[1.5e9, 0.5e9])
    r = resolve(state, decisions([False, False], [0.0, 0.0]))
    for field in ("upload_end_s", "exec_start_s", "exec_end_s"):
        assert np.all(np.isnan(getattr(r, field)))
    check(r, "spectrum_share", [0.0, 0.0])
    check(r, "rate_bps", [0.0, 0.0])
    check(r, "completion_time_s", [2.0, 3.0])
    check(r, "qos", [0.75, 0.5])
    check(r, "local_energy_j", [6.75, 0.375])
    check(r, "tx_energy_j", [0.0, 0.0])
    check(r, "server_energy_j", [0.0, 0.0])
    np.testing.assert_allclose(r.reward, [0.5375], rtol=1e-12)


@RESOLVERS
@pytest.mark.parametrize(("carry", "expected_next"), [(True, 6.0), (False, 0.0)])
def test_carried_backlog_without_new_work(resolve, carry, expected_next, make_params, make_state):
    # Server busy until 10 s, nothing offloaded: with carry-over 10 - 4 (slot_s) = 6 s are left for the next slot.
    p = make_params(carry_over_queue=carry)
    state = make_state(p, data_bits=[1e7], cycles=[2e9], deadline_s=[3.0], server_free_s=[[10.0]])
    r = resolve(state, decisions([False], [0.0]))
    np.testing.assert_allclose(r.server_free_next_s, [[expected_next]])


@RESOLVERS
def test_backlog_delays_the_first_start(resolve, make_params, make_state, upload_bits):
    # Server free at 10 s, task uploaded at 0.5 s: it starts at 10, ends at 10.5 (3e9 cycles); with carry-over
    # 10.5 - 4 = 6.5 s remain for the next slot. QoS with D = 4: 10.5 >= 8 -> 0.
    p = make_params(carry_over_queue=True)
    bits = upload_bits(p, G, 1.0, 0.5)
    state = make_state(p, data_bits=[bits], cycles=[3e9], deadline_s=[4.0], server_free_s=[[10.0]])
    r = resolve(state, decisions([True], [0.0]))
    check(r, "exec_start_s", [10.0])
    check(r, "exec_end_s", [10.5])
    check(r, "qos", [0.0])
    np.testing.assert_allclose(r.server_free_next_s, [[6.5]], rtol=1e-12)


@pytest.mark.parametrize(("carry", "start", "free_next"), [(True, 1.0, 1.0), (False, 0.5, 0.0)])
def test_carry_over_queue_across_slots_in_the_simulator(carry, start, free_next, make_params, upload_bits):
    # One UE, two slots (slot_s = 4). Slot 0: upload ends 1.0, 24e9 cycles = 4.0 s -> ends at 5.0, 1.0 s past the
    # slot. Slot 1: upload ends 0.5, 3e9 cycles = 0.5 s. With carry-over the server is free at 1.0 -> runs
    # 1.0 -> 1.5; without it the server starts idle -> 0.5 -> 1.0.
    cfg = config_from_dict({"scenario": {"carry_over_queue": carry}})
    setup = PhaseSetup.from_config(cfg, 1, 1)
    p = SimParams.from_config(cfg, setup)
    bits = [upload_bits(p, G, 1.0, 1.0), upload_bits(p, G, 1.0, 0.5)]
    episodes = EpisodeBatch(
        distance_m=np.array([[20.0]]),
        cpu_hz=np.array([[1e9]]),
        gain=np.array([[G]]),
        cluster=np.zeros((1, 1), dtype=np.int64),
        data_bits=np.array([[[bits[0]], [bits[1]]]]),
        cycles=np.array([[[24e9], [3e9]]]),
        deadline_s=np.array([[[4.0], [2.0]]]),
    )
    sim = Simulator(cfg, setup, 2)
    state = sim.reset_from(episodes)
    np.testing.assert_array_equal(state.server_free_s, [[0.0]])
    d = decisions([True], [0.0])
    r0 = sim.step(d)
    check(r0, "exec_start_s", [1.0])
    check(r0, "exec_end_s", [5.0])
    np.testing.assert_allclose(r0.server_free_next_s, [[free_next]], atol=1e-12)
    state = sim.state()
    assert state.slot == 1
    np.testing.assert_allclose(state.server_free_s, [[free_next]], atol=1e-12)
    r1 = sim.step(d)
    check(r1, "exec_start_s", [start])
    check(r1, "exec_end_s", [start + 0.5])
    check(r1, "qos", [1.0])
    assert sim.done


# --------------------------------------------------------------------------- kernel vs reference


def _random_slots(rng, cfg, setup, n_batch):
    ep = sample_episodes(cfg.scenario, setup, 1, [int(s) for s in rng.integers(0, 2**31, size=n_batch)])
    n, k = setup.n_ue, setup.n_clusters
    params = SimParams.from_config(cfg, setup)
    server_free = np.where(rng.random((n_batch, k)) < 0.5, rng.uniform(0.0, 6.0, (n_batch, k)), 0.0)
    state = SlotState(
        slot=0,
        data_bits=np.ascontiguousarray(ep.data_bits[:, 0]),
        cycles=np.ascontiguousarray(ep.cycles[:, 0]),
        deadline_s=np.ascontiguousarray(ep.deadline_s[:, 0]),
        distance_m=ep.distance_m,
        cpu_hz=ep.cpu_hz,
        gain=ep.gain,
        cluster=ep.cluster,
        server_free_s=server_free,
        params=params,
    )
    offload = rng.random((n_batch, n)) < rng.uniform(0.2, 1.0, (n_batch, 1))
    spectrum = np.where(offload, rng.uniform(0.05, 3.0, (n_batch, n)), 0.0)
    priority = np.round(rng.uniform(0.0, 1.0, (n_batch, n)), 1)  # coarse: many ties
    cpu = rng.uniform(0.05, 3.0, (n_batch, k))
    return state, Decisions(offload, spectrum, priority, cpu)


@pytest.mark.parametrize(
    ("phase", "n", "overrides"),
    [
        (1, 5, {"scenario": {"carry_over_queue": True}}),
        (1, 7, {"phase1": {"theta_min": 0.1}, "reward": {"w_energy_per_j": 0.5}}),
        (
            2,
            3,
            {"phase2": {"n_users": 12, "phi_min": 0.05, "kmeans_n_init": 1}, "scenario": {"carry_over_queue": True}},
        ),
    ],
)
def test_kernel_matches_reference_on_random_slots(phase, n, overrides):
    cfg = config_from_dict(overrides)
    setup = PhaseSetup.from_config(cfg, phase, n)
    rng = np.random.default_rng(2024 + phase * 10 + n)
    state, dec = _random_slots(rng, cfg, setup, 300)
    fast = resolve_slot(state, dec)
    slow = resolve_slot_reference(state, dec)
    assert fast.tasks.shape == (300, setup.n_ue, len(TASK_FIELDS))
    for j, field in enumerate(TASK_FIELDS):
        np.testing.assert_array_equal(np.isnan(fast.tasks[..., j]), np.isnan(slow.tasks[..., j]), err_msg=field)
        np.testing.assert_allclose(fast.tasks[..., j], slow.tasks[..., j], rtol=1e-9, atol=1e-12, equal_nan=True,
                                   err_msg=field)  # fmt: skip
    np.testing.assert_allclose(fast.cpu_share, slow.cpu_share, rtol=1e-12)
    np.testing.assert_allclose(fast.server_free_next_s, slow.server_free_next_s, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fast.reward, slow.reward, rtol=1e-9, atol=1e-9)
    # the sample really exercised what it is meant to: offloads, locals, busy servers, queues, carry-over
    assert fast.offload.any() and (~fast.offload).any()
    assert np.nanmax(fast.exec_start_s - fast.upload_end_s) > 0.5  # some task waited for the server
    if cfg.scenario.carry_over_queue:
        assert (fast.server_free_next_s > 0).any()
    # completion never precedes the upload, and each partition runs one task at a time
    assert np.all(fast.exec_start_s[fast.offload] >= fast.upload_end_s[fast.offload])
    for b in range(0, 300, 7):
        for k in range(setup.n_clusters):
            mine = fast.offload[b] & (state.cluster[b] == k)
            starts = fast.exec_start_s[b, mine]
            ends = fast.exec_end_s[b, mine]
            order = np.argsort(starts)
            assert np.all(starts[order][1:] >= ends[order][:-1] - 1e-12)
            if mine.any():
                assert starts.min() >= state.server_free_s[b, k]


# --------------------------------------------------------------------------- bad decisions


@RESOLVERS
@pytest.mark.parametrize("field", ["offload", "spectrum_weight", "priority", "cpu_weight"])
def test_wrong_shapes_raise(resolve, field, make_params, make_state):
    p = make_params()
    state = make_state(p, data_bits=[1e7, 1e7], cycles=[2e9, 2e9], deadline_s=[3.0, 3.0])
    good = decisions([True, False], [0.0, 0.0])
    bad = dataclasses.replace(good, **{field: np.concatenate([getattr(good, field)] * 2, axis=-1)})
    with pytest.raises(ValueError, match=field):
        resolve(state, bad)


@RESOLVERS
@pytest.mark.parametrize("weight", [0.0, -1.0])
def test_non_positive_spectrum_weight_of_an_offloader_raises(resolve, weight, make_params, make_state):
    p = make_params()
    state = make_state(p, data_bits=[1e7, 1e7], cycles=[2e9, 2e9], deadline_s=[3.0, 3.0])
    with pytest.raises(ValueError, match="spectrum_weight"):
        resolve(state, decisions([True, True], [0.0, 0.0], spectrum_weight=[1.0, weight]))


@RESOLVERS
def test_zero_spectrum_weight_of_a_local_ue_is_fine(resolve, make_params, make_state):
    p = make_params()
    state = make_state(p, data_bits=[1e7, 1e7], cycles=[2e9, 2e9], deadline_s=[3.0, 3.0])
    r = resolve(state, decisions([True, False], [0.0, 0.0], spectrum_weight=[1.0, 0.0]))
    check(r, "spectrum_share", [1.0, 0.0])


@RESOLVERS
@pytest.mark.parametrize(
    ("spectrum_weight", "cpu_weight"),
    [((1.0, np.inf), (1.0, 1.0)), ((1.0, 1.0), (1.0, 0.0)), ((1.0, 1.0), (-1.0, 2.0))],
    ids=["inf-spectrum", "zero-cpu", "negative-cpu"],
)
def test_invalid_weights_raise_in_both_resolvers(resolve, spectrum_weight, cpu_weight, make_params, make_state):
    # Decisions documents spectrum_weight finite > 0 for offloaders and cpu_weight > 0; the kernel enforces it, and
    # the reference, which the tests hold the kernel to, must reject the same inputs rather than compute something.
    p = make_params(phase=2, n=2, phi_min=0.1)
    state = make_state(p, data_bits=[1e7, 1e7], cycles=[2e9, 2e9], deadline_s=[3.0, 3.0], cluster=[0, 1])
    with pytest.raises(ValueError, match="weight"):
        resolve(state, decisions([True, True], [0.0, 0.0], spectrum_weight=spectrum_weight, cpu_weight=cpu_weight))


# --------------------------------------------------------------------------- Simulator


def _rule(state: SlotState) -> Decisions:
    """A deterministic, row-independent decision rule: offload tasks the UE would finish late, EDF order."""
    offload = state.cycles / state.cpu_hz > 0.8 * state.deadline_s
    return Decisions(offload, 1.0 + state.data_bits / 1e8, -state.deadline_s,
                     1.0 + np.arange(state.n_clusters)[None, :] * np.ones((state.batch_size, 1)))  # fmt: skip


def _run(sim: Simulator, seeds) -> list:
    state = sim.reset(seeds)
    results = []
    while not sim.done:
        results.append(sim.step(_rule(state)))
        if not sim.done:
            state = sim.state()
    return results


def test_simulator_reset_step_done():
    cfg = config_from_dict({})
    setup = PhaseSetup.from_config(cfg, 1, 3)
    sim = Simulator(cfg, setup, 3)
    with pytest.raises(RuntimeError):
        sim.state()
    state = sim.reset([1, 2])
    assert state.slot == 0 and state.data_bits.shape == (2, 3) and state.server_free_s.shape == (2, 1)
    assert not sim.done
    for s in range(3):
        assert sim.state().slot == s
        r = sim.step(_rule(sim.state()))
        assert r.tasks.shape == (2, 3, len(TASK_FIELDS)) and r.reward.shape == (2,)
    assert sim.done
    with pytest.raises(RuntimeError):
        sim.state()
    with pytest.raises(RuntimeError):
        sim.step(_rule(state))
    # reset starts over with a fresh server and slot 0
    state = sim.reset([1, 2])
    assert state.slot == 0 and not sim.done
    np.testing.assert_array_equal(state.server_free_s, 0.0)


def test_simulator_slots_are_the_sampled_slots():
    cfg = config_from_dict({})
    setup = PhaseSetup.from_config(cfg, 1, 2)
    episodes = sample_episodes(cfg.scenario, setup, 4, [5, 6, 7])
    sim = Simulator(cfg, setup, 4)
    state = sim.reset_from(episodes)
    for s in range(4):
        np.testing.assert_array_equal(state.data_bits, episodes.data_bits[:, s])
        np.testing.assert_array_equal(state.cycles, episodes.cycles[:, s])
        np.testing.assert_array_equal(state.deadline_s, episodes.deadline_s[:, s])
        sim.step(_rule(state))
        if s < 3:
            state = sim.state()
    with pytest.raises(ValueError):
        Simulator(cfg, setup, 5).reset_from(episodes)  # too few slots
    with pytest.raises(ValueError):
        Simulator(cfg, PhaseSetup.from_config(cfg, 1, 3), 4).reset_from(episodes)  # wrong number of UEs


@pytest.mark.parametrize(
    ("phase", "n", "overrides"),
    [(1, 4, {"scenario": {"carry_over_queue": True}}), (2, 3, {"phase2": {"n_users": 15, "kmeans_n_init": 2}})],
)
def test_simulator_is_deterministic_and_episodes_are_independent(phase, n, overrides):
    cfg = config_from_dict(overrides)
    setup = PhaseSetup.from_config(cfg, phase, n)
    seeds = episode_seeds(99, 4)
    batch = _run(Simulator(cfg, setup, 5), seeds)
    again = _run(Simulator(cfg, setup, 5), episode_seeds(99, 4))
    for a, b in zip(batch, again, strict=True):
        np.testing.assert_array_equal(a.tasks, b.tasks)
        np.testing.assert_array_equal(a.reward, b.reward)
    # episode 2 alone gives exactly what it gave as row 2 of the batch
    alone = _run(Simulator(cfg, setup, 5), [seeds[2]])
    for a, b in zip(batch, alone, strict=True):
        np.testing.assert_array_equal(a.tasks[2], b.tasks[0])
        np.testing.assert_array_equal(a.reward[2], b.reward[0])
        np.testing.assert_array_equal(a.server_free_next_s[2], b.server_free_next_s[0])
    # different seeds give different episodes
    other = _run(Simulator(cfg, setup, 5), episode_seeds(100, 4))
    assert not np.array_equal(batch[0].tasks, other[0].tasks)
    # the check is not vacuous: the rule offloads some tasks and keeps others local
    offload = np.concatenate([r.offload for r in batch])
    assert offload.any() and (~offload).any()


@pytest.mark.parametrize(("phase", "n", "overrides"), [(1, 5, {}), (2, 3, {"phase2": {"n_users": 12, "kmeans_n_init": 1}})])
def test_local_counterfactual_rewards_replay_each_slot_with_one_ue_local(phase, n, overrides):
    """Entry (b, i): the reward of slot b with UE i switched to local and every other decision kept, computed here
    one slot and one UE at a time with the reference resolver; the actual reward where UE i already runs locally."""
    from mec.simulator import local_counterfactual_rewards

    cfg = config_from_dict(overrides)
    setup = PhaseSetup.from_config(cfg, phase, n)
    state, dec = _random_slots(np.random.default_rng(5), cfg, setup, 6)
    got = local_counterfactual_rewards(state, dec)
    assert got.shape == (6, setup.n_ue)
    fields = ("data_bits", "cycles", "deadline_s", "distance_m", "cpu_hz", "gain", "cluster", "server_free_s")
    for b in range(6):
        one = dataclasses.replace(state, **{f: getattr(state, f)[b : b + 1] for f in fields})
        parts = [x[b : b + 1] for x in (dec.offload, dec.spectrum_weight, dec.priority, dec.cpu_weight)]
        actual = resolve_slot_reference(one, Decisions(*parts)).reward[0]
        for i in range(setup.n_ue):
            offload = parts[0].copy()
            offload[0, i] = False
            expected = resolve_slot_reference(one, Decisions(offload, *parts[1:])).reward[0]
            assert got[b, i] == pytest.approx(expected, rel=1e-9, abs=1e-9)
            if not dec.offload[b, i]:
                assert got[b, i] == pytest.approx(actual, rel=1e-12, abs=1e-12)
    assert dec.offload.any() and (got != resolve_slot(state, dec).reward[:, None]).any()
