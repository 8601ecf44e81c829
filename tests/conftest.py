"""Shared helpers for the simulator and baseline tests: hand-made slots."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mec import physics
from mec.config import config_from_dict
from mec.scenario import PhaseSetup
from mec.simulator import SimParams, SlotState


def _row(values, dtype=float) -> np.ndarray:
    arr = np.asarray(values, dtype=dtype)
    return np.ascontiguousarray(arr[None, :] if arr.ndim == 1 else arr)


def build_params(overrides: dict | None = None, phase: int = 1, n: int = 3, **replace) -> SimParams:
    """SimParams of a config (defaults plus `overrides`) for phase/n, with fields replaced by keyword."""
    cfg = config_from_dict(overrides or {})
    params = SimParams.from_config(cfg, PhaseSetup.from_config(cfg, phase, n))
    return dataclasses.replace(params, **replace) if replace else params


def build_state(
    params: SimParams,
    *,
    data_bits,
    cycles,
    deadline_s,
    cpu_hz=None,
    gain=None,
    cluster=None,
    server_free_s=None,
    slot: int = 0,
) -> SlotState:
    """A SlotState of one episode (B = 1) unless 2-D arrays are given."""
    data_bits = _row(data_bits)
    shape = data_bits.shape
    full = lambda v, default: _row(v) if v is not None else np.full(shape, default)  # noqa: E731
    cluster = _row(cluster, np.int64) if cluster is not None else np.zeros(shape, dtype=np.int64)
    if server_free_s is None:
        server_free = np.zeros((shape[0], params.n_clusters))
    else:
        server_free = _row(server_free_s)
    return SlotState(
        slot=slot,
        data_bits=data_bits,
        cycles=full(cycles, 0.0),
        deadline_s=full(deadline_s, 0.0),
        distance_m=np.full(shape, 20.0),
        cpu_hz=full(cpu_hz, 1e9),
        gain=full(gain, 1e-8),
        cluster=cluster,
        server_free_s=server_free,
        params=params,
    )


def bits_for_upload(params: SimParams, gain: float, share: float, seconds: float) -> float:
    """Data size that takes exactly `seconds` to upload on `share` of the band at channel gain `gain`."""
    rate = physics.rate_bps(params.bandwidth_hz, share, params.tx_power_w, gain, params.noise_w_per_hz)
    return float(rate * seconds)


@pytest.fixture
def make_params():
    return build_params


@pytest.fixture
def make_state():
    return build_state


@pytest.fixture
def upload_bits():
    return bits_for_upload


# --------------------------------------------------------------------------- the slow marker (make test-fast)

# Tests that take more than a few seconds each: training runs, the Snakemake workflow run for real, killed,
# interrupted and resumed jobs, SLURM, the quick start. `make test` runs everything (CI too); `make test-fast`
# deselects these (-m "not slow") and still touches every module, a one-iteration training of tiny sizes included.
# Patterns are fnmatch patterns on the test ids; a test matching SLOW and none of FAST is marked slow. Name a new slow
# test here (or mark it @pytest.mark.slow).
SLOW = (
    "tests/test_workflow.py::*",
    "tests/test_integrity.py::*",
    "tests/test_slurm.py::*",
    "tests/test_driver.py::*",
    "tests/test_quickstart.py::*",
    "tests/test_workflow_runner.py::test_ctrl_c_of_the_tiny_study_*",
    "tests/test_training.py::*",
    "tests/test_sb3.py::*",
    "tests/test_variants.py::test_tune_end_to_end",
    "tests/test_cli.py::test_compare_writes_every_policy_for_every_size",
    "tests/test_cli.py::test_evaluate_out_is_deterministic_and_records_provenance",
    "tests/test_cli.py::test_bad_input_is_one_clear_line_and_nonzero_exit[[]args[1-9]*",
    "tests/test_errors.py::test_numbers_on_the_snakemake_command_line_work_as_in_a_config_file",
    "tests/test_errors.py::test_the_tiny_study_writes_into_its_own_results_dir",
    "tests/test_errors.py::test_a_failed_workflow_job_writes_its_traceback_into_its_log",
    "tests/test_errors.py::test_the_validation_seed_equal_to_the_evaluation_seed_stops_the_workflow",
    "tests/test_errors.py::test_a_duplicate_key_in_a_configfile_stops_the_workflow",
    "tests/test_best_of.py::test_mec_evaluate_best_of_k_reports_it_beside_the_policy",
    # phase 1's (one cluster); phase 2's set-actor training (its clusters, the coordinator) stays in the fast loop
    "tests/test_set_actor.py::test_a_tiny_set_actor_training_runs_and_its_checkpoint_loads_and_evaluates[[]phase1[]]",
    # the same for the spectrum grant: phase 1's training is slow, phase 2's (the cluster schedulers' grant) stays fast
    "tests/test_spectrum_grant.py::test_a_tiny_training_with_the_grant_runs_and_its_checkpoint_evaluates[[]phase1[]]",
)
# Within those: what the fast loop keeps (a tiny two-iteration training run and its rerun; SB3's slot view; the
# signal tests of test_driver.py that run no training).
FAST = (
    "tests/test_training.py::test_train_phase1_smoke",
    "tests/test_training.py::test_rerunning_a_finished_run_does_not_retrain",
    "tests/test_sb3.py::test_slot_view_spaces_and_env_checker*",
    "tests/test_sb3.py::test_slot_view_decodes_the_documented_action_layout",
    "tests/test_sb3.py::test_bad_values_are_one_line_errors",
    # mec.interrupt in this process, the run lock, a stand-in workflow job: under 5 s each
    "tests/test_driver.py::test_a_signal_raises_stopped_prints_one_line_and_restores_the_handlers",
    "tests/test_driver.py::test_a_signal_in_a_deferred_section_stops_at_its_end",
    "tests/test_driver.py::test_the_lock_file_goes_with_a_job_that_wrote_nothing_and_stays_with_a_run",
    "tests/test_driver.py::test_ctrl_c_ends_a_workflow_job_in_one_line_on_stderr_and_in_its_log",
)


def is_slow(nodeid: str) -> bool:
    """Whether the test of this id (tests/test_x.py::name[params]) belongs to `make test` only."""
    from fnmatch import fnmatchcase  # noqa: PLC0415

    return any(fnmatchcase(nodeid, p) for p in SLOW) and not any(fnmatchcase(nodeid, p) for p in FAST)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: more than a few seconds (training, the workflow, SLURM); not in make test-fast"
    )


def pytest_collection_modifyitems(config, items):
    for item in items:
        if is_slow(item.nodeid):
            item.add_marker(pytest.mark.slow)
