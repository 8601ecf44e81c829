"""How much of local search's reward lies in a spectrum split that a UE could choose from what it sees; one JSON.

Phase 1, tight_deadlines scenario by default (deadlines U[1, 2] s), on the study's evaluation episodes (every slot with
an idle server). Local search (mec.optimiser) picks each slot's offload set, server order and spectrum weights with
full information. Its offload sets and orders are kept and its spectrum weights replaced by:
  equal               every offloader the same weight;
  own_linear          exp of a least-squares fit of local search's log-weight (centred per slot) on the UE's own
                      observation (mec.envs.features.UE_FEATURES): what a UE could choose from its own features;
  own_gbm             the same fit with a gradient-boosted regressor (sklearn), nonlinear;
  own_rank_gbm        plus the UE's position in the server's order and the number of offloaders;
  own_rank_others_gbm plus the mean, min and max of the offloaders' features (information no UE has).
The fits are made on other episodes (--fit-seed) and applied to the evaluation episodes; `in_sample` applies them
to their own episodes. Every figure is the mean reward per slot as a % of the upper bound (mec.bound), beside local
search's own and the equal-split oracle's. Imitating local search's weights is only one way to choose a split, so
this does not bound what a learned policy can reach; it shows how much of local search's advantage a per-UE
function of the features reproduces.

  .venv/bin/python benchmarks/bench_spectrum_split.py --n 7
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from sklearn.ensemble import HistGradientBoostingRegressor  # noqa: E402

from mec import io  # noqa: E402
from mec.baselines import OraclePolicy  # noqa: E402
from mec.bound import spectrum_bound  # noqa: E402
from mec.config import load_config  # noqa: E402
from mec.envs import features  # noqa: E402
from mec.evaluation import evaluation_episodes  # noqa: E402
from mec.optimiser import LocalSearchPolicy  # noqa: E402
from mec.scenario import PhaseSetup  # noqa: E402
from mec.simulator import Decisions, SimParams, resolve_slot, slot_block_state  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TIGHT = "scenario.task.deadline_s={low: 1.0, high: 2.0}"


def own(state, scales) -> np.ndarray:
    """(B, N, F + 1) each UE's own observation and a constant."""
    f = features.ue_features(state, np.ones((state.batch_size, 1)), scales).astype(float)
    return np.concatenate([f, np.ones(f.shape[:2] + (1,))], axis=-1)


def rank(d: Decisions) -> np.ndarray:
    """(B, N, 3) position in the server's order / N, offloaders / N, position / offloaders."""
    n = d.offload.shape[1]
    order = np.argsort(-np.where(d.offload, d.priority, -np.inf), axis=1, kind="stable")
    pos = np.empty_like(order)
    np.put_along_axis(pos, order, np.broadcast_to(np.arange(n), order.shape).copy(), axis=1)
    m = np.broadcast_to(d.offload.sum(1, keepdims=True), pos.shape)
    return np.stack([pos / n, m / n, pos / np.maximum(m, 1)], axis=-1).astype(float)


def others(state, d: Decisions, scales) -> np.ndarray:
    """(B, N, 3F) mean, max and min of the offloaders' features, the same for every UE of a slot."""
    f = own(state, scales)[..., :-1]
    m = d.offload[..., None]
    mean = (f * m).sum(1, keepdims=True) / np.maximum(m.sum(1, keepdims=True), 1)
    high = np.where(m, f, -9.0).max(1, keepdims=True)
    low = np.where(m, f, 9.0).min(1, keepdims=True)
    return np.concatenate([np.broadcast_to(a, f.shape) for a in (mean, high, low)], axis=-1)


def log_weight(d: Decisions) -> np.ndarray:
    """Local search's log spectrum weight, centred over each slot's offloaders (only ratios matter)."""
    w = np.log(np.where(d.offload, d.spectrum_weight, np.nan))
    return w - np.nanmean(w, axis=1, keepdims=True)


def with_weights(d: Decisions, w: np.ndarray) -> Decisions:
    return Decisions(d.offload, np.where(d.offload, w, 1.0), d.priority, d.cpu_weight)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=7, help="UEs (phase 1), at most 8 (the bound's)")
    parser.add_argument("--fit-seed", type=int, default=777, help="seed of the episodes the splits are fitted on")
    parser.add_argument("--spec", action="store_true", help="the spec's deadlines instead of tight_deadlines")
    args = parser.parse_args()
    cfg = load_config(ROOT / "config.yaml", [] if args.spec else [TIGHT])
    setup = PhaseSetup.from_config(cfg, 1, args.n)
    params, scales, ev = SimParams.from_config(cfg, setup), features.FeatureScales(cfg.scenario), cfg.evaluation

    def block(seed):
        return slot_block_state(evaluation_episodes(cfg, setup, ev.episodes, ev.slots, seed), params, ev.slots)

    fit_state, test_state = block(args.fit_seed), block(ev.seed)
    started = time.perf_counter()
    search = LocalSearchPolicy(1)
    fit_d, fit_r, _ = search.best(fit_state)
    test_d, test_r, _ = search.best(test_state)
    search_s = time.perf_counter() - started
    fit_bound, test_bound = spectrum_bound(fit_state).mean(), spectrum_bound(test_state).mean()

    def pct(reward, bound):
        return round(100 * float(np.mean(reward)) / bound, 2)

    inputs = {
        "own": (own(fit_state, scales), own(test_state, scales)),
        "own_rank": (np.concatenate([own(fit_state, scales), rank(fit_d)], -1),
                     np.concatenate([own(test_state, scales), rank(test_d)], -1)),  # fmt: skip
        "own_rank_others": (np.concatenate([own(fit_state, scales), rank(fit_d), others(fit_state, fit_d, scales)], -1),
                            np.concatenate([own(test_state, scales), rank(test_d),
                                            others(test_state, test_d, scales)], -1)),  # fmt: skip
    }
    target = log_weight(fit_d)[fit_d.offload]
    splits = {}
    for name, model in (("own_linear", "linear"), ("own_gbm", "own"), ("own_rank_gbm", "own_rank"),
                        ("own_rank_others_gbm", "own_rank_others")):  # fmt: skip
        x_fit, x_test = inputs["own" if model == "linear" else model]
        if model == "linear":
            coef, *_ = np.linalg.lstsq(x_fit[fit_d.offload], target, rcond=None)
            predict = lambda x, coef=coef: x @ coef  # noqa: E731
        else:
            gbm = HistGradientBoostingRegressor(max_iter=300, random_state=0).fit(x_fit[fit_d.offload], target)
            predict = gbm.predict
        row = {}
        for where, state, d, x, bound in (("held_out", test_state, test_d, x_test, test_bound),
                                          ("in_sample", fit_state, fit_d, x_fit, fit_bound)):  # fmt: skip
            w = np.ones(d.spectrum_weight.shape)
            w[d.offload] = np.exp(np.clip(predict(x[d.offload]), -5, 5))
            row[where] = pct(resolve_slot(state, with_weights(d, w)).reward, bound)
        splits[name] = row
    equal = resolve_slot(test_state, with_weights(test_d, np.ones(test_d.spectrum_weight.shape))).reward
    report = {
        "benchmark": "spectrum_split",
        "cpu": io.machine()["cpu"],
        "scenario": "spec" if args.spec else "tight_deadlines",
        "n": args.n,
        "slots": int(test_state.batch_size),
        "upper_bound_reward_per_slot": round(float(test_bound), 4),
        "percent_of_bound": {
            "local_search": pct(test_r, test_bound),
            "oracle_equal_split": pct(OraclePolicy().best(test_state)[1], test_bound),
            "local_search_sets_orders": {"equal": pct(equal, test_bound), **splits},
            "local_search_on_the_fit_episodes": pct(fit_r, fit_bound),
        },
        "local_search_s": round(search_s, 1),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
