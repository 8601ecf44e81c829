"""Screen for a phase-2 scenario where the hierarchy's decisions carry weight; baselines only, no training; one JSON.

For each point of a grid over the edge server's CPU clock (scenario.server.cpu_ghz) and uplink band
(scenario.server.bandwidth_mhz), and each K of phase2.n_clusters, it runs every phase-2 heuristic and local search
(mec.optimiser) on the same episodes (--episodes x --slots, drawn from --seed, which is neither the evaluation's nor
the training validation's seed, so the scenario is not chosen on the episodes it is scored on) and records:
  all_local            reward per slot of all-local;
  best_heuristic       the best heuristic by name and its reward per slot;
  local_search         local search's reward per slot, and the share of tasks it offloads;
  ls_gain_pct          local search above all-local, % of all-local's reward;
  heuristic_gap_pct    the best heuristic below local search, % of local search's reward;
  split_loss_pct_of_gain
                       how much the CPU split matters: local search with every cluster's CPU share fixed equal
                       (its seeds' CPU weights made equal, no CPU moves: what search reaches without a coordinator),
                       as the % of local search's gain over all-local that fixing the split loses; beside it the best
                       heuristic of each split rule (equal, proportional, urgency), reward per slot.
A point is open when at every K ls_gain_pct >= 15 (the decisions carry weight) and heuristic_gap_pct >= 10 (the rules
leave room to learn). Among open points the chosen one maximises the mean split_loss_pct_of_gain over K (the CPU split,
the coordinator's decision, matters most), ties to the smaller server; `split_matters` says whether that loss
reaches --min-split-pct.

  .venv/bin/python benchmarks/bench_capable_edge.py --out docs/benchmarks/bench_capable_edge.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mec import io  # noqa: E402
from mec.config import load_config  # noqa: E402
from mec.evaluation import evaluation_episodes, make_policy  # noqa: E402
from mec.optimiser import LocalSearchPolicy  # noqa: E402
from mec.policies import CPU_SPLITS, LOCAL_SEARCH, policy_names  # noqa: E402
from mec.scenario import PhaseSetup  # noqa: E402
from mec.simulator import SimParams, resolve_slot, slot_block_state  # noqa: E402


def point_overrides(cpu_ghz: float, bandwidth_mhz: float) -> list[str]:
    return [f"scenario.server.cpu_ghz={cpu_ghz}", f"scenario.server.bandwidth_mhz={bandwidth_mhz}"]


def screen_k(cfg, k: int, n_episodes: int, n_slots: int, seed: int) -> dict:
    """Every heuristic and local search at one K, on the same block of slots (each with an idle server)."""
    setup = PhaseSetup.from_config(cfg, 2, k)
    episodes = evaluation_episodes(cfg, setup, n_episodes, n_slots, seed)
    state = slot_block_state(episodes, SimParams.from_config(cfg, setup), n_slots)
    rewards = {}
    for name in policy_names(2):
        if name == LOCAL_SEARCH:
            continue
        rewards[name] = float(resolve_slot(state, make_policy(name, 2).act(state)).reward.mean())
    started = time.perf_counter()
    searched, _, _ = LocalSearchPolicy(2, search_spectrum=True).best(state)
    search_s = time.perf_counter() - started
    result = resolve_slot(state, searched)
    local_search = float(result.reward.mean())
    ls_equal = float(LocalSearchPolicy(2, search_spectrum=True, search_cpu=False).best(state)[1].mean())
    heuristics = rewards  # every composed heuristic, as the study's tables pick the best one
    best = max(heuristics, key=heuristics.get)
    by_split = {split: max(r for name, r in heuristics.items() if name.endswith(f"-{split}")) for split in CPU_SPLITS}
    all_local = rewards["all-local"]
    gain = local_search - all_local
    return {
        "k": k,
        "all_local": all_local,
        "best_heuristic": best,
        "best_heuristic_reward": heuristics[best],
        "local_search": local_search,
        "local_search_offload_share": float(searched.offload.mean()),
        "local_search_ms_per_slot": 1e3 * search_s / state.batch_size,
        "ls_gain_pct": 100 * gain / abs(all_local),
        "heuristic_gap_pct": 100 * (local_search - heuristics[best]) / abs(local_search),
        "local_search_equal_split": ls_equal,
        "split_loss_pct_of_gain": 100 * (local_search - ls_equal) / gain if gain > 0 else float("nan"),
        "best_heuristic_by_split": by_split,
    }


def is_open(rows: list[dict]) -> bool:
    """Local search >= 15% above all-local and the best heuristic >= 10% below local search at every K."""
    return all(r["ls_gain_pct"] >= 15 and r["heuristic_gap_pct"] >= 10 for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "config.yaml"))
    parser.add_argument("--cpu-ghz", type=float, nargs="+", default=[6.0, 12.0, 24.0, 36.0, 48.0, 60.0])
    parser.add_argument("--bandwidth-mhz", type=float, nargs="+", default=[20.0, 50.0, 100.0])
    parser.add_argument("--k", type=int, nargs="+", default=None, help="K values (default: phase2.n_clusters)")
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--slots", type=int, default=20)
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--min-split-pct", type=float, default=5.0)
    parser.add_argument("--out", default=None, help="also write the JSON here (atomically)")
    args = parser.parse_args()
    base = load_config(args.config)
    ks = args.k or list(base.phase2.n_clusters)
    if args.seed in (base.evaluation.seed, base.training.eval_seed):
        parser.error(f"--seed {args.seed}: allowed any seed but evaluation.seed and training.eval_seed")
    # Compile local search's kernel before any timing (numba compiles on the first call).
    warm = PhaseSetup.from_config(base, 2, ks[0])
    LocalSearchPolicy(2).best(slot_block_state(evaluation_episodes(base, warm, 1, 1, args.seed),
                                               SimParams.from_config(base, warm), 1))  # fmt: skip
    started = time.perf_counter()
    points = []
    for cpu, band in itertools.product(args.cpu_ghz, args.bandwidth_mhz):
        cfg = load_config(args.config, point_overrides(cpu, band))
        rows = [screen_k(cfg, k, args.episodes, args.slots, args.seed) for k in ks]
        point = {"cpu_ghz": cpu, "bandwidth_mhz": band, "per_k": rows,
                 "min_ls_gain_pct": min(r["ls_gain_pct"] for r in rows),
                 "min_heuristic_gap_pct": min(r["heuristic_gap_pct"] for r in rows),
                 "mean_split_loss_pct_of_gain": float(np.mean([r["split_loss_pct_of_gain"] for r in rows])),
                 "mean_offload_share": float(np.mean([r["local_search_offload_share"] for r in rows])),
                 "open": is_open(rows)}  # fmt: skip
        # The mean over K: a single K's figure moves by a few % between local search's local optima.
        point["split_matters"] = point["mean_split_loss_pct_of_gain"] >= args.min_split_pct
        points.append(point)
        print(f"cpu {cpu:5.1f} GHz  band {band:5.1f} MHz  LS gain >= {point['min_ls_gain_pct']:5.1f}%  "
              f"heuristic gap >= {point['min_heuristic_gap_pct']:5.1f}%  split loss "
              f"{point['mean_split_loss_pct_of_gain']:5.1f}% of gain  offload {point['mean_offload_share']:.2f}  "
              f"{'open' if point['open'] else ''}", file=sys.stderr)  # fmt: skip
    candidates = [p for p in points if p["open"]]
    chosen = max(candidates, key=lambda p: (p["mean_split_loss_pct_of_gain"], -p["cpu_ghz"], -p["bandwidth_mhz"]),
                 default=None)  # fmt: skip
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()  # fmt: skip
    report = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "commit": commit,
        "machine": io.machine(),
        "episodes": args.episodes, "slots": args.slots, "seed": args.seed, "k": ks,
        "criteria": {"ls_gain_pct": ">= 15", "heuristic_gap_pct": ">= 10",
                     "at": "every K", "chosen": "the open point where fixing the split loses most (mean over K)",
                     "split_matters": f"mean split_loss_pct_of_gain >= {args.min_split_pct}"},
        "chosen": None if chosen is None else {key: chosen[key] for key in (
            "cpu_ghz", "bandwidth_mhz", "min_ls_gain_pct", "min_heuristic_gap_pct", "mean_split_loss_pct_of_gain",
            "split_matters", "mean_offload_share")},
        "wall_s": time.perf_counter() - started,
        "points": points,
    }  # fmt: skip
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        io.atomic_write(args.out, lambda tmp: Path(tmp).write_text(text + "\n", encoding="utf-8"))


if __name__ == "__main__":
    main()
