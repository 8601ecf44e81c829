"""The `mec` command: `python -m mec evaluate ...`, `train ...`, `compare ...`, `reproduce ...`, `publish ...` and
`readme ...`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pandas as pd

from mec import __version__, interrupt, io, metrics, reproduce
from mec.config import (
    BACKENDS,
    MAX_PHASE1_UE,
    ConfigError,
    StudyConfig,
    check_episode_memory,
    config_from_dict,
    config_to_dict,
    load_config,
)
from mec.evaluation import evaluation_episodes, make_policy, run_baselines, run_policy
from mec.policies import ORACLE, ORACLE_MAX_UE
from mec.reproduce import ReproduceError
from mec.scenario import PhaseSetup

DEFAULT_CONFIG = Path("config.yaml")


class CliError(Exception):
    """A bad flag or file; printed as one line and exit status 2."""


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"got {text!r}; allowed an integer >= {low}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"got {value}; allowed an integer >= {low}")
        return value

    return parse


_positive_int = _int_at_least(1)
_seed = _int_at_least(0)


def _parquet_path(text: str) -> Path:
    if not text.endswith(".parquet"):
        raise argparse.ArgumentTypeError(f"got {text!r}; allowed a file name ending in .parquet")
    return Path(text)


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="study config YAML (default: ./config.yaml if present, else the built-in defaults it documents)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config value by dotted key, e.g. --set scenario.carry_over_queue=true (repeatable)",
    )


def _add_size_flags(parser: argparse.ArgumentParser, required: bool) -> None:
    size = parser.add_mutually_exclusive_group(required=required)
    size.add_argument("--n-ue", type=_positive_int, help="phase 1: number of UEs (the oracle allows up to 8)")
    size.add_argument("--n-clusters", type=_positive_int, help="phase 2: number of k-means clusters K")


def _load(args, memory: bool = True) -> StudyConfig:
    """The config of --config (else ./config.yaml, else the defaults) with --set on top. `memory`: check the
    study's sizes fit in memory; evaluate and train check their own sizes and flags instead (memory=False)."""
    if args.config is not None:
        return load_config(args.config, args.overrides, memory=memory)
    if DEFAULT_CONFIG.exists():
        return load_config(DEFAULT_CONFIG, args.overrides, memory=memory)
    from mec.config import apply_overrides

    return config_from_dict(apply_overrides({}, args.overrides), memory=memory)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mec", description="MEC hierarchical MARL study (also: python -m mec)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    ev = sub.add_parser(
        "evaluate",
        help="evaluate one policy on seeded evaluation episodes",
        description="Evaluate one policy (a heuristic or the phase-1 oracle) on evaluation episodes drawn from "
        "--seed. Prints a summary; --json prints it as one JSON object; --out writes one Parquet row per "
        "(episode, slot). With --checkpoint and --best-of K, the learned policy's best-of-K decisions follow as a "
        "second policy (a second summary, JSON line and set of rows).",
    )
    ev.add_argument("--phase", type=int, choices=(1, 2), help="1: N UEs, one server; 2: clusters (not with "
                    "--checkpoint, which knows its phase)")  # fmt: skip
    _add_size_flags(ev, required=False)
    source = ev.add_mutually_exclusive_group(required=True)
    source.add_argument("--policy", help="a heuristic or the oracle; an unknown name lists the valid ones")
    source.add_argument(
        "--checkpoint",
        type=Path,
        help="a training checkpoint directory (e.g. RUN/checkpoints/best): evaluate the learned policy of its "
        "phase and size with its config (--config/--set still apply on top)",
    )
    ev.add_argument("--best-of", type=_int_at_least(0), metavar="K",
                    help="with --checkpoint, K >= 2: also evaluate the learned policy's best of K joint actions per "
                    "slot (its deterministic one and K - 1 sampled, each resolved by the simulator; a centralised "
                    "decision, reported as <policy>-best-of-K beside the policy's own); 0 or 1: off (default: "
                    "evaluation.best_of)")  # fmt: skip
    ev.add_argument("--schedule-out", type=_parquet_path,
                    help="also write the per-task schedule (upload and execution times, deadline, QoS) as "
                    "Parquet")  # fmt: skip
    ev.add_argument("--episodes", type=_positive_int, help="evaluation episodes (default: evaluation.episodes)")
    ev.add_argument("--slots", type=_positive_int, help="slots per episode (default: evaluation.slots)")
    ev.add_argument("--seed", type=_seed, help="evaluation seed: the episodes drawn (default: evaluation.seed)")
    ev.add_argument("--policy-seed", type=_seed, default=0, help="seed of the policy's own randomness (random)")
    ev.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    ev.add_argument("--out", type=_parquet_path, help="write one row per (episode, slot) to this Parquet file")
    _add_config_flags(ev)

    tr = sub.add_parser(
        "train",
        help="train the agents of one (phase, N or K, seed) job; resumes if interrupted",
        description="Train one job with the hyperparameters of the config's training section, with RLlib MAPPO "
        "or Stable-Baselines3 PPO (--backend). Writes OUT/metrics.parquet (one row per iteration) and "
        "OUT/checkpoints/{latest,best,final,iter_<i>}. Rerunning the same command resumes from the latest "
        "checkpoint; a finished run is not retrained.",
    )
    tr.add_argument("--phase", type=int, choices=(1, 2), required=True, help="1: N UEs, one server; 2: clusters")
    _add_size_flags(tr, required=True)
    tr.add_argument("--seed", type=_seed, required=True, help="training seed (networks, exploration, episodes)")
    tr.add_argument("--out", type=Path, required=True, help="run directory")
    tr.add_argument("--num-cpus", type=_positive_int, help="CPUs Ray (rllib) or torch (sb3) may use (default: "
                    "training.num_cpus)")  # fmt: skip
    tr.add_argument("--backend", choices=BACKENDS, help="rllib: MAPPO, one policy per role; sb3: Stable-Baselines3 "
                    "PPO on the joint decision of each slot (default: training.backend)")  # fmt: skip
    _add_config_flags(tr)

    cmp_ = sub.add_parser(
        "compare",
        help="evaluate every baseline for every N (phase 1) and K (phase 2) of the config",
        description="Run every heuristic (and the oracle in phase 1) on the same evaluation episodes for each "
        "configured N and K; write OUT/phase<P>_slots.parquet (per episode and slot; in phase 1 with the slot's upper "
        "bound on any policy's reward, column slot_bound) and OUT/summary.parquet.",
    )
    cmp_.add_argument("--out", type=Path, default=Path("results/baselines"), help="output folder")
    cmp_.add_argument("--phases", type=int, nargs="+", choices=(1, 2), default=[1, 2], help="phases to run")
    _add_config_flags(cmp_)

    rep = sub.add_parser(
        "reproduce",
        help="check a rerun's summary rows against committed ones, value for value",
        description="Match the rows of two summary tables of the workflow (e.g. summary/learned_seeds.parquet) on "
        "their key columns (phase, size, policy, seed, metric, ...) and compare every shared value exactly. Exit 0 "
        "if every committed row that was rerun is equal bit for bit (and at least one was), 1 if any differs or none "
        "was rerun, 2 on unreadable input. Bit-identical training needs the committed run's CPU model, which the "
        "report names.",
    )
    rep.add_argument("--committed", type=Path, required=True, help="the committed summary table (Parquet)")
    rep.add_argument("--rerun", type=Path, required=True, help="the rerun's summary table (Parquet)")

    pub = sub.add_parser(
        "publish",
        help="merge a finished part of the study into the committed tables under docs/summary/",
        description="Merge the summary tables of a finished part of the study (the results_dir of --config, merged "
        "over --base as `make study CONFIG=...` reads it) into --summary: rows of the phases the part ran replace the "
        "committed rows of those phases, other phases' rows stay; the study's and its scenarios' tables only from a "
        "part of --base's study, the tables across variants (ablations, backends, pareto, tuning) from any part that "
        "built them. Copies the figures docs/results.md shows into --figures and records the part (commit, CPU "
        "model, jobs, wall and CPU seconds of its benchmark files) in SUMMARY/parts.json. Every input is checked "
        "before anything is written.",
    )
    pub.add_argument("--config", type=Path, required=True, help="the part's config (as given to make study)")
    pub.add_argument("--part", help="the part's name (default: the config file's name without .yaml)")
    pub.add_argument("--scenarios-only", action="store_true",
                     help="the part ran its workflow.scenarios alone (`make study TARGETS=scenarios`), not the "
                          "study's own sweep, whose committed tables stay as they are")  # fmt: skip
    _add_committed_flags(pub)

    rdm = sub.add_parser(
        "readme",
        help="rebuild docs/results.md's generated section and the README's headline from docs/summary/",
        description="Rebuild the results section of --page and the headline of --readme (between their markers) "
        "from the committed tables under --summary alone: the study's and each scenario's comparison, the tables "
        "across variants there, the parts behind them (SUMMARY/parts.json) and the figures under --figures.",
    )
    rdm.add_argument("--readme", type=Path, default=Path("README.md"), help="the page with the headline markers")
    rdm.add_argument("--page", type=Path, default=Path("docs/results.md"), help="the page with the results markers")
    _add_committed_flags(rdm)
    return parser


def _add_committed_flags(parser: argparse.ArgumentParser) -> None:
    # Defaults: mec.publish's (imported only by these commands: it needs mec.markdown and matplotlib).
    parser.add_argument("--summary", type=Path, help="the committed summary tables (default: docs/summary)")
    parser.add_argument("--figures", type=Path, help="the committed figures (default: docs/results)")
    parser.add_argument("--base", type=Path, help="the study's config (default: config.yaml)")


def _committed_flags(args) -> dict:
    return {key: getattr(args, key) for key in ("summary", "figures", "base") if getattr(args, key) is not None}


_SLACK = 1e-12  # as mec.config: 100 * 0.01 counts as feasible despite rounding


def _most(floor: float) -> int | None:
    """The most UEs or clusters a minimum share `floor` allows (n * floor <= 1); None: any number."""
    return int((1 + _SLACK) / floor) if floor > 0 else None


def _setup(cfg: StudyConfig, phase: int, n_ue: int | None, n_clusters: int | None) -> PhaseSetup:
    """The phase's setup at the size of the flags, checked against the bounds the config puts on that size."""
    if phase == 1:
        if n_ue is None:
            raise CliError("--n-clusters is a phase-2 flag; phase 1 takes --n-ue N")
        most = _most(cfg.phase1.theta_min)
        if most is not None and most < MAX_PHASE1_UE and n_ue > most:
            raise CliError(
                f"--n-ue {n_ue}: allowed 1..{most} (n_ue * phase1.theta_min <= 1 with theta_min = "
                f"{cfg.phase1.theta_min:g})"
            )
        if n_ue > MAX_PHASE1_UE:
            raise CliError(f"--n-ue {n_ue}: allowed 1..{MAX_PHASE1_UE} (the range of phase1.n_ue)")
        return PhaseSetup.from_config(cfg, 1, n_ue)
    if n_clusters is None:
        raise CliError("--n-ue is a phase-1 flag; phase 2 takes --n-clusters K (phase2.n_users sets the UEs)")
    if n_clusters > cfg.phase2.n_users:
        raise CliError(f"--n-clusters {n_clusters}: allowed 1..{cfg.phase2.n_users} (phase2.n_users)")
    most = _most(cfg.phase2.phi_min)
    if most is not None and n_clusters > most:
        raise CliError(
            f"--n-clusters {n_clusters}: allowed 1..{min(most, cfg.phase2.n_users)} (K * phase2.phi_min <= 1 "
            f"with phi_min = {cfg.phase2.phi_min:g})"
        )
    return PhaseSetup.from_config(cfg, 2, n_clusters)


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def _check_out_file(flag: str, path: Path) -> None:
    """An output file's path: not an existing directory, and in a place this process can write to."""
    if os.path.isdir(path):
        raise CliError(f"{flag} {path}: is a directory; allowed: a file name ending in .parquet")
    _check_writable(flag, path, path.parent, (path.name,))


def _check_out_dir(flag: str, path: Path) -> None:
    """An output folder: a directory (new or existing), never an existing file, in a place one can write to."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise CliError(f"{flag} {path}: is an existing file, not a directory; allowed: a new or existing directory")
    _check_writable(flag, path, path)


def _check_writable(flag: str, path: Path, folder: Path, names: tuple[str, ...] = ()) -> None:
    """`folder` (created where missing) takes new files, tried by writing one (mec.io.writable_problem: a full
    disk, /proc, a symlink loop, a name too long), before any work; `names` are the files to come in it."""
    base = _nearest_existing(folder)
    if not os.path.isdir(base):
        try:
            os.stat(base)
            what = "is a file, not a directory"
        except OSError as exc:  # a symlink loop, or a link to nowhere
            what = f"cannot be followed ({exc.strerror})"
        raise CliError(f"{flag} {path}: {base} {what}; allowed: a path under a directory")
    problem = io.writable_problem(folder, names)
    if problem:
        allowed = "" if "allowed:" in problem else "; allowed: a path where you may write"
        raise CliError(f"{flag} {path}: {problem}{allowed}")


def _make_policy(name: str, setup: PhaseSetup, seed: int):
    try:
        policy = make_policy(name, setup.phase, seed)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if name == ORACLE and setup.n_ue > ORACLE_MAX_UE:
        raise CliError(f"--policy oracle with --n-ue {setup.n_ue}: allowed up to {ORACLE_MAX_UE} UEs")
    return policy


def _checkpoint_policy(args):
    from mec import backends
    from mec.config import apply_overrides
    from mec.runs import CHECKPOINT_META, check_against_run, read_checkpoint_meta

    if args.phase is not None or args.n_ue is not None or args.n_clusters is not None:
        raise CliError("--checkpoint knows its phase and size; drop --phase/--n-ue/--n-clusters")
    if not args.checkpoint.is_dir():
        raise CliError(f"--checkpoint {args.checkpoint}: no such directory")
    try:
        meta = read_checkpoint_meta(args.checkpoint)
        check_against_run(args.checkpoint, meta)  # before anything is loaded (load_policy checks it too)
        if args.config is None:  # the checkpoint's own config, with --set on top
            try:
                cfg = config_from_dict(apply_overrides(meta["config"], args.overrides), memory=False)
            except ConfigError as exc:
                raise ConfigError(f"config of checkpoint {args.checkpoint / CHECKPOINT_META}: {exc}") from None
        else:
            cfg = _load(args, memory=False)
        # Either backend's checkpoint (RLlib role modules or an SB3 joint policy), by the backend it records.
        name = f"{backends.policy_name(meta)}-seed{meta['seed']}-iter{meta['iteration']}"
        policy, meta = backends.load_policy(args.checkpoint, cfg, name=name)
        setup = PhaseSetup.from_config(cfg, meta["phase"], meta["n"])
    except (FileNotFoundError, ValueError) as exc:
        raise CliError(str(exc)) from None
    return cfg, setup, policy, name


def _evaluate(args) -> int:
    if args.checkpoint is not None:
        cfg, setup, policy, name = _checkpoint_policy(args)
    else:
        cfg = _load(args, memory=False)
        if args.phase is None:
            raise CliError("--phase is required with --policy")
        setup = _setup(cfg, args.phase, args.n_ue, args.n_clusters)
        policy, name = _make_policy(args.policy, setup, args.policy_seed), args.policy
    episodes = args.episodes or cfg.evaluation.episodes
    slots = args.slots or cfg.evaluation.slots
    seed = cfg.evaluation.seed if args.seed is None else args.seed
    best_of = cfg.evaluation.best_of if args.best_of is None else args.best_of
    if args.checkpoint is None and args.best_of is not None and args.best_of > 1:
        raise CliError(f"--best-of {args.best_of} with --policy: allowed with --checkpoint only (best-of-K samples "
                       "the learned policy's own decisions)")  # fmt: skip
    if args.checkpoint is None:
        best_of = 0  # evaluation.best_of is about learned policies
    check_episode_memory(
        ("--episodes" if args.episodes else "evaluation.episodes", "--slots" if args.slots else "evaluation.slots"),
        (episodes, slots),
        setup.n_ue,
    )
    outputs = [(flag, path) for flag, path in (("--out", args.out), ("--schedule-out", args.schedule_out)) if path]
    if len(outputs) == 2 and os.path.realpath(args.out) == os.path.realpath(args.schedule_out):
        raise CliError(f"--schedule-out {args.schedule_out}: the same file as --out {args.out}; allowed: another "
                       "file (the schedule would overwrite the per-slot table)")  # fmt: skip
    for flag, path in outputs:
        _check_out_file(flag, path)
    batch = evaluation_episodes(cfg, setup, episodes, slots, seed)
    # The policy itself, then (with --best-of K) its best-of-K decisions beside it, on the same episodes.
    evaluated = [(name, policy)]
    if best_of > 1:
        from mec.best_of import evaluated_best_of  # noqa: PLC0415

        chooser = evaluated_best_of(policy, best_of, seed)
        evaluated.append((chooser.name, chooser))
    summaries, frames, schedules = [], [], []
    for label, decider in evaluated:
        frame, schedule = run_policy(cfg, setup, decider, batch, trace=True)
        summaries.append({"phase": setup.phase, "n_ue": setup.n_ue, "n_clusters": setup.n_clusters, "policy": label,
                          "seed": seed, **metrics.summarise(frame)})  # fmt: skip
        frames.append(frame.assign(policy=label))
        schedules.append(schedule.assign(policy=label))
    summary = summaries[0]
    provenance = {"config": config_to_dict(cfg), **summary}
    if len(summaries) > 1:
        provenance["best_of"] = summaries[1]
    tables = [pd.concat(frames, ignore_index=True), pd.concat(schedules, ignore_index=True)]
    for (flag, path), table in zip(outputs, tables if args.out else tables[1:]):
        try:
            io.write_parquet(table, path, provenance)
        except OSError as exc:  # the disk filled during the evaluation
            raise CliError(f"{flag} {path}: cannot be written ({io.failure_line(exc)}); nothing else was written "
                           "under that name") from None  # fmt: skip
    for summary in summaries:
        if args.json:
            print(json.dumps(summary))
            continue
        if summary is not summaries[0]:
            print()
        width = max(len(k) for k in summary)
        for key, value in summary.items():
            print(f"{key:<{width}}  {value:.6g}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    return 0


def _compare(args) -> int:
    cfg = _load(args)
    _check_out_dir("--out", args.out)
    ev = cfg.evaluation
    summaries = []
    for phase in args.phases:
        sizes = cfg.phase1.n_ue if phase == 1 else cfg.phase2.n_clusters
        frames = []
        for n in sizes:
            setup = PhaseSetup.from_config(cfg, phase, n)
            episodes = evaluation_episodes(cfg, setup, ev.episodes, ev.slots, ev.seed)
            label = f"phase {phase} {'N' if phase == 1 else 'K'}={n:<3d} "
            slots, summary = run_baselines(cfg, setup, episodes, log=lambda line: print(label + line, flush=True))
            summaries.append(summary)
            frames.append(slots.assign(phase=phase, n_ue=setup.n_ue, n_clusters=setup.n_clusters))
        provenance = {"config": config_to_dict(cfg), "seed": ev.seed}
        io.write_parquet(pd.concat(frames, ignore_index=True), args.out / f"phase{phase}_slots.parquet", provenance)
    table = pd.concat(summaries, ignore_index=True)
    io.write_parquet(table, args.out / "summary.parquet", {"config": config_to_dict(cfg), "seed": ev.seed})
    best = table.loc[table.groupby(["phase", "n_ue", "n_clusters"])["reward_per_slot"].idxmax()]
    print("\nbest policy per sweep point (reward per slot):")
    print(best[["phase", "n_ue", "n_clusters", "policy", "reward_per_slot", "mean_qos", "energy_per_task_j"]]
          .to_string(index=False))  # fmt: skip
    print(f"\nwrote {args.out}/summary.parquet and per-slot tables")
    return 0


def _train(args) -> int:
    if args.backend is not None:
        args.overrides.append(f"training.backend={args.backend}")
    cfg = _load(args, memory=False)
    n = args.n_ue if args.phase == 1 else args.n_clusters
    setup = _setup(cfg, args.phase, args.n_ue, args.n_clusters)
    t = cfg.training  # the config checks these at its workflow.phases' sizes; here at this job's
    check_episode_memory(("training.eval_episodes", "training.episode_slots"), (t.eval_episodes, t.episode_slots),
                         setup.n_ue)  # fmt: skip
    check_episode_memory(("training.train_batch_slots",), (t.train_batch_slots,), setup.n_ue)
    from mec.plan import ray_address_problem  # noqa: PLC0415

    problem = ray_address_problem(cfg.training.ray_address)  # before --out is created
    if problem:
        raise CliError(problem)
    _check_out_dir("--out", args.out)  # creates it, and writes a probe file there
    from mec.backends import train  # Ray and torch: only once the flags are known to be good

    try:
        train(cfg, args.phase, n, args.seed, args.out, num_cpus=args.num_cpus,
              log=lambda line: print(line, flush=True))  # fmt: skip
    except (FileNotFoundError, ValueError) as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:  # a full disk during training: the run resumes from its latest checkpoint
        raise CliError(f"--out {args.out}: {io.failure_line(exc)}; rerun the command once that is fixed: it resumes "
                       "from the latest checkpoint") from None  # fmt: skip
    return 0


def _reproduce(args) -> int:
    equal, text = reproduce.report(args.committed, args.rerun)
    print(text)
    return 0 if equal else 1


def _publish(args) -> int:
    from mec import publish  # noqa: PLC0415

    try:
        record = publish.publish(args.config, args.part, scenarios_only=args.scenarios_only,
                                 **_committed_flags(args))  # fmt: skip
    except publish.PublishError as exc:
        raise CliError(str(exc)) from None
    print(f"published part {record['part']} ({record['commit']}{', uncommitted changes' if record['dirty'] else ''}"
          f"; {record['cpu']}): {', '.join(record['covers'])}; {record['jobs']} jobs, "
          f"{record['cpu_s'] / 3600:.2f} CPU-hours; recorded in {args.summary or publish.SUMMARY_DIR}/"
          f"{publish.PARTS_FILE}. Next: make readme")
    return 0


def _readme(args) -> int:
    from mec import publish  # noqa: PLC0415

    try:
        changed, missing = publish.readme(readme_path=args.readme, page=args.page, **_committed_flags(args))
    except publish.PublishError as exc:
        raise CliError(str(exc)) from None
    for path in missing:
        print(f"note: {path}: no such figure, not shown (publish the part that draws it)")
    print(f"updated: {', '.join(map(str, changed)) or 'nothing (already current)'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        # SIGINT (Ctrl-C) or SIGTERM: one line "stopped by SIGINT: ..." on stderr, exit 130 or 143 (mec.interrupt);
        # a training job says itself where its run resumes.
        if args.command == "evaluate":
            with interrupt.stop_on_signals(lambda: "the evaluation did not finish (no output file is half-written); "
                                           "rerun the command"):  # fmt: skip
                return _evaluate(args)
        if args.command == "train":
            with interrupt.stop_on_signals(lambda: "before the training job began; rerun the command"):
                return _train(args)
        if args.command == "reproduce":
            return _reproduce(args)
        if args.command == "publish":
            return _publish(args)
        if args.command == "readme":
            return _readme(args)
        return _compare(args)
    except (ConfigError, CliError, ReproduceError, io.CorruptFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except interrupt.Stopped as exc:
        return exc.code


if __name__ == "__main__":
    sys.exit(main())
