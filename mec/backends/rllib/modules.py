"""TorchRLModules of the three roles, shared by every agent of a role, and the per-row PPO loss.

Every module scores each row of its role's table (a UE, a scheduler table row, a cluster) with the same weights, so
they serve any N, K or cluster size, and a padded row never changes another row's output. The UEs' actor is one
small MLP on each row alone (a UE decides from what it observes). The scheduler's and the coordinator's actor is
training.actor: `rows`, the same per-row MLP, or `set` (SetActor), where each row also sees the mean embedding of
the valid rows of its table: a scheduler row those of the offloaded tasks of its own cluster (the fleet observation's
CLUSTER_KEY), a cluster's row every cluster's. The distribution of each row:
  ue:          offload ~ Bernoulli(sigmoid(l0)); spectrum weight = 0.01 + 0.99 * x, x ~ Beta(1 + softplus(l1),
               1 + softplus(l2)) (its log-probability counts only when the UE offloads)
  scheduler:   priority score ~ Normal(mu, sigma) per row; rows of UEs that did not offload (and padding) are
               masked out of the loss and their scores are ignored by the environment
  coordinator: CPU-share logit ~ Normal(mu, sigma) per cluster; the env applies the floor-softmax
With scenario.spectrum_by = scheduler (read from the action spaces: the UEs' has no "spectrum", the scheduler's is a
Dict) the spectrum weight moves from the UE row to the scheduler row: the UE is the Bernoulli alone, and a scheduler
row is (priority ~ Normal(mu, sigma), spectrum weight = 0.01 + 0.99 * x, x ~ Beta(1 + softplus(l1), 1 +
softplus(l2))), independent given the row, so the row's one PPO ratio is over the sum of their log-probabilities
and its entropy the sum of theirs.
Deterministic actions: offload iff sigmoid(l0) > 1/2, the Beta mean, and mu.

Critic (ValueFunctionAPI): `central` (MAPPO) encodes every row of the global slot state (mec.envs.features
STATE_FEATURES) with the first training.critic_row_layers hidden layers, takes the mean over rows and applies the
other hidden layers and a linear head; `local` (IPPO ablation) does the same over the role's own observation rows;
`none` (the UEs with marginal credit, whose advantage never comes from a critic) has no critic.

`FleetPPOLearner` takes one PPO probability ratio per row (per UE decision), not one per fleet sample. With
training.ue_credit = "marginal", `MarginalCredit` (a learner connector) puts each UE's marginal contribution to its
slot's reward (computed by the fleet env, mec.envs.fleet) into the `ue` module's batch, and the UE rows take it,
standardised, as their advantage instead of the shared one.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import ENTROPY_KEY, POLICY_LOSS_KEY, VF_LOSS_KEY
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule
from ray.rllib.core.distribution.torch.torch_distribution import TorchDiagGaussian
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from torch import nn

from mec.config import ACTORS
from mec.envs.fleet import CLUSTER_KEY, CREDIT_KEY
from mec.envs.mec_env import SPECTRUM_LOW

ROLES = ("ue", "scheduler", "coordinator")
# Actor outputs per row: the Bernoulli logit (offload), the two Beta parameters (spectrum weight; on the UE's row or,
# with the grant, on the scheduler's), the Normal mean (priority, CPU-share logit).
_OUT = {"ue": 3, "scheduler": 1, "coordinator": 1}
_BETA = 2
_EPS = 1e-4


class _SigmoidTanh(torch.autograd.Function):
    """tanh(x) computed as 2 * sigmoid(2x) - 1, with the derivative 1 - tanh(x)^2 from the output.

    The same function as torch.tanh (to float32 rounding, about 2e-7). On an AMD EPYC (Zen 4) torch's CPU build
    evaluates sigmoid about twice as fast as tanh, and the activations are a third of the learner's time at K = 10
    (100 rows per sample); on an Intel Xeon (Sapphire Rapids) torch's tanh is the faster one, 1.28x per K = 10 update
    (benchmarks/bench_learner.py --compare activation). Every committed result was trained with this form.

    Each pass allocates one tensor and works in place on it (forward: 2x, sigmoid, *2, -1; backward: y^2, -y^2 + 1,
    * grad): at K = 10 these are (25000, 64) tensors, where a fresh allocation (its page faults) costs more than the
    arithmetic. The values are bit for bit those of the out-of-place 2 * sigmoid(2x) - 1 and grad * (1 - y^2), the
    form of the committed results (negating, and swapping a product's operands, round nothing; tests/test_modules.py).
    """

    @staticmethod
    def forward(ctx, x):
        y = torch.mul(x, 2.0).sigmoid_().mul_(2.0).sub_(1.0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return torch.mul(y, y).neg_().add_(1.0).mul_(grad)


class Tanh(nn.Module):
    """nn.Tanh by way of _SigmoidTanh."""

    def forward(self, x):
        return _SigmoidTanh.apply(x)


ACTIVATIONS = {"tanh": Tanh, "relu": nn.ReLU}


def mlp(n_in: int, hidden: tuple[int, ...], n_out: int, activation: str = "tanh") -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(n_in, width), ACTIVATIONS[activation]()]
        n_in = width
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


class SetActor(nn.Module):
    """Each row's output from its own row and the mean over the rows of its group (a DeepSets layer).

    embed (Linear + activation to hidden[0]) runs on every row; a group's context is the mean of its rows'
    embeddings; the head is mlp(hidden[0], hidden[1:], out) whose first layer also adds `context` (a bias-free Linear)
    of the row's group mean: the same function as one Linear over concat(embedding, mean), with the mean's term
    computed once per group instead of once per row, so the rows' matrix products are the per-row MLP's and the
    context adds only the pooling and one gather. Groups are labels (a scatter-add over them, not a rows x rows mask),
    so rows of any number of tables, each of any size, are pooled in one pass, each only with its own. Only the
    groups that hold a row are pooled (phase 2's scheduler: a few offloaded tasks in some of the B x K clusters).
    """

    def __init__(self, n_in: int, hidden: tuple[int, ...], n_out: int, activation: str):
        super().__init__()
        self.embed = mlp(n_in, hidden[:1], hidden[0], activation)[:-1]
        self.head = mlp(hidden[0], hidden[1:], n_out, activation)
        self.context = nn.Linear(hidden[0], self.head[0].out_features, bias=False)

    def forward(self, rows: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        """rows (V, F) and each row's group label (V,), any integers -> (V, out)."""
        embedded = self.embed(rows)
        occupied, group = torch.unique(group, return_inverse=True)
        sums = embedded.new_zeros((len(occupied), embedded.shape[1])).index_add_(0, group, embedded)
        counts = torch.bincount(group, minlength=len(occupied)).to(embedded.dtype)
        context = self.context(sums / counts[:, None])
        return self.head[1:](self.head[0](embedded) + context[group])


class RoleModule(TorchRLModule, ValueFunctionAPI):
    """model_config: {"role": ue | scheduler | coordinator, "hidden": [64, 64], "activation": tanh | relu,
    "actor": rows | set (scheduler and coordinator; the UEs' actor is always rows), "critic": central | local |
    none, "critic_row_layers": how many of the hidden layers the critic applies to every row before the mean}."""

    def setup(self):
        cfg = dict(self.model_config or {})
        self.role = cfg.get("role", "ue")
        if self.role not in ROLES:
            raise ValueError(f"role {self.role!r}: allowed {', '.join(ROLES)}")
        hidden = tuple(cfg.get("hidden", (64, 64)))
        self.central = cfg.get("critic", "central") == "central"
        activation = cfg.get("activation", "tanh")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation {activation!r}: allowed {', '.join(ACTIVATIONS)}")
        n_obs = self.observation_space["obs"].shape[-1]
        self.actor_kind = "rows" if self.role == "ue" else cfg.get("actor", "rows")
        if self.actor_kind not in ACTORS:
            raise ValueError(f"actor {self.actor_kind!r}: allowed {', '.join(ACTORS)}")
        # The spectrum grant (scenario.spectrum_by = scheduler), as the fleet env's action spaces say: the UEs
        # request no spectrum weight, the scheduler grants one per row with the priority.
        self.grant = (self.role == "ue" and "spectrum" not in self.action_space.spaces) or (
            self.role == "scheduler" and isinstance(self.action_space, gym.spaces.Dict)
        )
        self.n_out = _OUT[self.role] + (-_BETA if self.role == "ue" else _BETA) * self.grant
        if self.actor_kind == "set":
            self.actor = SetActor(n_obs, hidden, self.n_out, activation)
        else:
            self.actor = mlp(n_obs, hidden, self.n_out, activation)
        # The set scheduler pools each row only with its own cluster's rows, so it needs every row's cluster (the
        # fleet env gives it with training.actor = set); the number of clusters is the space's bound.
        self.n_clusters = 1
        if self.actor_kind == "set" and self.role == "scheduler":
            if CLUSTER_KEY not in self.observation_space.spaces:
                raise ValueError(f"the set scheduler actor needs the observation key {CLUSTER_KEY!r} (each row's "
                                 "cluster), which the fleet env gives with training.actor: set")  # fmt: skip
            self.n_clusters = int(self.observation_space[CLUSTER_KEY].high.max()) + 1
        # Initial exploration noise of the Gaussian roles. The coordinator's logits act through a softmax over K
        # clusters, where a std of 0.6 only gives near-equal splits at large K (every cluster ~1/K of the CPU, too
        # little for any task to meet its deadline at K = 10); a std of 1.6 also tries splits that favour a few
        # clusters, which is where offloading starts to pay.
        init_log_std = {"scheduler": -0.5, "coordinator": 0.5}.get(self.role)
        self.log_std = nn.Parameter(torch.full((), init_log_std)) if init_log_std is not None else None
        # "none": a role whose advantage never comes from a critic (the UEs with marginal credit) has none, and
        # compute_values returns zeros without a forward pass.
        self.has_critic = cfg.get("critic", "central") != "none"
        if self.has_critic:
            # A local critic needs no global state, so observation spaces without "state" work with it.
            n_critic_in = self.observation_space["state"].shape[-1] if self.central else n_obs
            # A set encoder: the first `critic_row_layers` hidden layers on every row, the mean over rows, the
            # remaining hidden layers and a linear head on the mean. The row layers are where the cost is (R rows
            # per sample, R = 100 UEs in phase 2); the layers after the mean run once per sample.
            row_layers = int(cfg.get("critic_row_layers", 1))
            if not 1 <= row_layers <= len(hidden):
                raise ValueError(f"critic_row_layers {row_layers}: allowed 1..{len(hidden)} (the hidden layers)")
            self.critic_rows = mlp(n_critic_in, hidden[:row_layers], hidden[row_layers - 1], activation)[:-1]
            self.critic_pooled = mlp(hidden[row_layers - 1], hidden[row_layers:], 1, activation)

    # -- rows -----------------------------------------------------------------------------------------------------

    def _rows(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, R, F) view of the role's table (scheduler tables (B, K, M, F) flatten to R = K*M)."""
        return obs.reshape(obs.shape[0], -1, obs.shape[-1])

    def row_mask(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, R) rows that carry a decision: every UE and cluster; scheduler rows of offloaded UEs."""
        rows = self._rows(obs)
        if self.role == "scheduler":
            return rows[..., 0] > 0.5
        return torch.ones(rows.shape[:2], dtype=torch.bool, device=rows.device)

    def _dist_inputs(self, observation: dict) -> torch.Tensor:
        """(B, R, out) distribution parameters. Gaussian roles carry their log-std as the last channel, so the
        stored inputs alone define the distribution that sampled an action (the PPO ratio's denominator)."""
        rows = self._rows(observation["obs"])
        n_b, n_r = rows.shape[:2]
        if self.role == "scheduler":
            # Only rows that carry a decision (offloaded UEs) are scored; the others' scores are ignored by the
            # simulator and masked out of the loss, so they are left at 0 rather than computed (nor pooled: a row
            # without a decision has no effect on any other row's output).
            valid = rows[..., 0] > 0.5
            out = rows.new_zeros((n_b, n_r, self.n_out))
            if self.actor_kind == "set":
                sample = torch.arange(n_b, device=rows.device)[:, None] * self.n_clusters
                group = sample + observation[CLUSTER_KEY].reshape(n_b, n_r).long()
                out[valid] = self.actor(rows[valid], group[valid])
            else:
                out[valid] = self.actor(rows[valid])
        elif self.actor_kind == "set":  # the coordinator: one table of clusters per sample
            group = torch.arange(n_b, device=rows.device).repeat_interleave(n_r)
            out = self.actor(rows.reshape(n_b * n_r, -1), group).reshape(n_b, n_r, -1)
        else:
            out = self.actor(rows)
        if self.log_std is not None:
            out = torch.cat([out, self.log_std.expand(*out.shape[:-1], 1)], dim=-1)
        return out

    # -- distributions --------------------------------------------------------------------------------------------

    # The distributions skip torch's argument validation (validate_args=False): their parameters are finite by
    # construction (softplus + 1, exp), and the checks are thousands of small tensor ops per learner update (a few
    # percent of it at K = 10); the values are the same.

    def _beta(self, inputs: torch.Tensor) -> torch.distributions.Beta:
        """The spectrum weight's Beta (of x, the weight = 0.01 + 0.99 x) from channels 1 and 2: the UE's request, or
        with the grant the scheduler row's."""
        a = 1.0 + nn.functional.softplus(inputs[..., 1])
        b = 1.0 + nn.functional.softplus(inputs[..., 2])
        return torch.distributions.Beta(a, b, validate_args=False)

    def _gauss(self, inputs: torch.Tensor) -> torch.distributions.Normal:
        """Channel 0 the mean, the last channel the log-std (with the grant the Beta's two lie between)."""
        return torch.distributions.Normal(inputs[..., 0], inputs[..., -1].exp(), validate_args=False)

    def _spectrum(self, inputs: torch.Tensor, explore: bool) -> torch.Tensor:
        beta = self._beta(inputs)
        x = beta.sample().clamp(_EPS, 1 - _EPS) if explore else beta.mean
        return SPECTRUM_LOW + (1 - SPECTRUM_LOW) * x

    def _plus_beta(self, logp: torch.Tensor, inputs: torch.Tensor, spectrum: torch.Tensor, rows: torch.Tensor):
        """logp plus the spectrum weight's Beta log-probability on `rows` (B, R) alone: the same values and gradients
        as adding it masked over every row, without the log-gamma work on the others (in phase 2 most rows carry no
        spectrum weight: UEs that run locally)."""
        if not bool(rows.any()):
            return logp
        x = ((spectrum.reshape(rows.shape)[rows] - SPECTRUM_LOW) / (1 - SPECTRUM_LOW)).clamp(_EPS, 1 - _EPS)
        return logp.masked_scatter(rows, logp[rows] + self._beta(inputs[rows]).log_prob(x))

    def row_logp(self, inputs: torch.Tensor, actions: Any, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, R) log-probability of each row's action under the distribution `inputs` parameterise. `mask` (B, R):
        the rows that carry a decision (every caller masks the others out); with the grant the scheduler's Beta term
        is computed on those rows alone (on every row if None)."""
        shape = inputs.shape[:2]
        if self.role == "ue":
            offload = actions["offload"].reshape(shape).float()
            logp = torch.distributions.Bernoulli(logits=inputs[..., 0], validate_args=False).log_prob(offload)
            # The requested spectrum weight counts only where the UE offloaded; with the grant it requests none.
            return logp if self.grant else self._plus_beta(logp, inputs, actions["spectrum"], offload > 0.5)
        if self.grant:
            logp = self._gauss(inputs).log_prob(actions["priority"].reshape(shape).float())
            rows = torch.ones(shape, dtype=torch.bool, device=inputs.device) if mask is None else mask
            return self._plus_beta(logp, inputs, actions["spectrum"], rows)
        return self._gauss(inputs).log_prob(actions.reshape(shape).float())

    def row_entropy(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.role == "ue":
            offload_dist = torch.distributions.Bernoulli(logits=inputs[..., 0], validate_args=False)
            if self.grant:
                return offload_dist.entropy()
            return offload_dist.entropy() + offload_dist.probs * self._beta(inputs).entropy()
        entropy = self._gauss(inputs).entropy()
        return entropy + self._beta(inputs).entropy() if self.grant else entropy

    def _actions(self, inputs: torch.Tensor, obs: torch.Tensor, explore: bool) -> dict[str, Any]:
        table_shape = obs.shape[:-1]  # (B, N) / (B, K, M) / (B, K)
        mask = self.row_mask(obs)
        if self.role == "ue":
            offload_dist = torch.distributions.Bernoulli(logits=inputs[..., 0], validate_args=False)
            offload = offload_dist.sample() if explore else (offload_dist.probs > 0.5).float()
            actions = {"offload": offload.reshape(table_shape)}
            if not self.grant:
                actions["spectrum"] = self._spectrum(inputs, explore)
        else:
            gauss = self._gauss(inputs)
            actions = (gauss.sample() if explore else gauss.mean).reshape(table_shape)
            if self.grant:
                actions = {"priority": actions, "spectrum": self._spectrum(inputs, explore).reshape(table_shape)}
        logp = (self.row_logp(inputs, actions, mask) * mask).sum(dim=1)
        return {Columns.ACTIONS: actions, Columns.ACTION_LOGP: logp, Columns.ACTION_DIST_INPUTS: inputs}

    # -- RLModule API ---------------------------------------------------------------------------------------------

    def _forward_inference(self, batch, **kwargs):
        observation = batch[Columns.OBS]
        return self._actions(self._dist_inputs(observation), observation["obs"], explore=False)

    def _forward_exploration(self, batch, **kwargs):
        observation = batch[Columns.OBS]
        return self._actions(self._dist_inputs(observation), observation["obs"], explore=True)

    def _forward_train(self, batch, **kwargs):
        return {Columns.ACTION_DIST_INPUTS: self._dist_inputs(batch[Columns.OBS])}

    def compute_values(self, batch, embeddings=None):
        obs = batch[Columns.OBS]
        if not self.has_critic:
            return torch.zeros(obs["obs"].shape[0], device=obs["obs"].device)
        rows = self._rows(obs["state"] if self.central else obs["obs"])
        if self.central:
            pooled = self.critic_rows(rows).mean(1)
        else:
            mask = self.row_mask(obs["obs"]).float()
            pooled = (self.critic_rows(rows) * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)
        return self.critic_pooled(pooled).squeeze(-1)

    # RLlib asks for distribution classes; actions are sampled in the module, so these only serve its API checks.
    def get_exploration_action_dist_cls(self):
        return TorchDiagGaussian

    def get_inference_action_dist_cls(self):
        return TorchDiagGaussian

    def get_train_action_dist_cls(self):
        return TorchDiagGaussian


class MarginalCredit(ConnectorV2):
    """Learner connector: the `ue` module's batch gets a CREDIT_KEY column, (T, N) per UE and step.

    The credit of the action at step t arrives in the info of step t + 1 (the fleet env hands it over with the
    `ues` agent's next observation). Steps without one (RLlib's appended bootstrap step, which the loss masks out)
    get zeros."""

    def __call__(self, *, rl_module, batch, episodes, explore=None, shared_data=None, **kwargs):
        for episode in self.single_agent_episode_iterator(episodes, agents_that_stepped_only=False):
            if episode.module_id != "ue":
                continue
            n = len(episode)
            width = int(np.prod(rl_module["ue"].observation_space["obs"].shape[:-1]))
            infos = episode.get_infos(slice(1, n + 1), fill={})
            zeros = np.zeros(width, dtype=np.float32)
            credit = [np.asarray(info.get(CREDIT_KEY, zeros), dtype=np.float32) for info in infos]
            credit += [zeros] * (n - len(credit))
            self.add_n_batch_items(batch, CREDIT_KEY, credit, n, episode)
        return batch


def sample_ue_rows(batch: SampleBatch, rows: int, rng: np.random.Generator) -> SampleBatch:
    """The `ue` module's batch with `rows` of its N UE rows per slot, drawn without replacement for each slot.

    Every per-row column (the observation table, both actions, the stored distribution inputs, the marginal credit)
    is gathered at the same rows; per-slot columns (the global state the central critic pools over, advantages,
    value targets, the loss mask) stay whole. Each UE decision is its own PPO sample (one ratio per row), so a random
    subset of them is an unbiased sample of the same loss. With rows >= N the batch is returned as it is."""
    obs = batch[Columns.OBS]["obs"]
    n_slots, n_rows = obs.shape[:2]
    if rows >= n_rows:
        return batch
    keep = torch.from_numpy(np.argsort(rng.random((n_slots, n_rows)), axis=1)[:, :rows]).to(obs.device)
    at = torch.arange(n_slots, device=obs.device)[:, None]

    def gather(x):
        return x[at, keep]

    data = dict(batch)
    data[Columns.OBS] = {**batch[Columns.OBS], "obs": gather(obs)}
    data[Columns.ACTIONS] = {key: gather(value) for key, value in batch[Columns.ACTIONS].items()}
    data[Columns.ACTION_DIST_INPUTS] = gather(batch[Columns.ACTION_DIST_INPUTS])
    if CREDIT_KEY in batch:
        data[CREDIT_KEY] = gather(batch[CREDIT_KEY])
    return SampleBatch(data, _zero_padded=batch.zero_padded)


class FleetPPOLearner(PPOTorchLearner):
    """PPO with one clipped probability ratio per row (each UE / scheduler row / cluster decision)."""

    def _make_batch_if_necessary(self, training_data):
        # RLlib's minibatch iterator reshuffles each module's batch from numpy's global generator, module after
        # module in the order of the batch's dict, which the learner connectors build in an order that depends on
        # string hashing (PYTHONHASHSEED). One fixed order (sorted module ids) makes the minibatches, and so the
        # training, the same in every process.
        batch = super()._make_batch_if_necessary(training_data)
        if isinstance(batch, MultiAgentBatch):
            policy_batches = {mid: batch.policy_batches[mid] for mid in sorted(batch.policy_batches)}
            rows = int(self.config.learner_config_dict.get("ue_rows_per_slot", 0))
            if rows and "ue" in policy_batches:
                # A fresh draw per update call (one iteration's epochs), from a stream keyed by the run's seed and
                # the learner's update count, which its checkpoint restores: a resumed run draws the same rows.
                rng = np.random.default_rng([int(self.config.seed or 0), self._weights_seq_no])
                policy_batches["ue"] = sample_ue_rows(policy_batches["ue"], rows, rng)
            batch = MultiAgentBatch(policy_batches, env_steps=batch.env_steps())
        return batch

    def compute_loss_for_module(self, *, module_id, config, batch, fwd_out):
        module = self.module[module_id].unwrapped()
        obs = batch[Columns.OBS]["obs"]
        rows_valid = module.row_mask(obs)
        if Columns.LOSS_MASK in batch:
            step_mask = batch[Columns.LOSS_MASK].bool()
        else:
            step_mask = torch.ones(rows_valid.shape[0], dtype=torch.bool, device=rows_valid.device)
        valid = (rows_valid & step_mask[:, None]).float()
        n_valid = valid.sum().clamp(min=1.0)

        new_inputs = fwd_out[Columns.ACTION_DIST_INPUTS]
        new_logp = module.row_logp(new_inputs, batch[Columns.ACTIONS], rows_valid)
        with torch.no_grad():
            old_logp = module.row_logp(batch[Columns.ACTION_DIST_INPUTS], batch[Columns.ACTIONS], rows_valid)
        ratio = torch.exp(new_logp - old_logp)
        if CREDIT_KEY in batch:  # per-UE marginal credit, standardised over the minibatch's rows
            credit = batch[CREDIT_KEY].reshape(valid.shape).float()
            mean = (credit * valid).sum() / n_valid
            std = (((credit - mean) ** 2 * valid).sum() / n_valid).sqrt().clamp(min=1e-4)
            adv = (credit - mean) / std
        else:
            adv = batch[Postprocessing.ADVANTAGES][:, None]
        surrogate = torch.min(adv * ratio, adv * torch.clamp(ratio, 1 - config.clip_param, 1 + config.clip_param))
        policy_loss = -(surrogate * valid).sum() / n_valid
        entropy = (module.row_entropy(new_inputs) * valid).sum() / n_valid
        approx_kl = ((old_logp - new_logp) * valid).sum() / n_valid

        step_valid = step_mask.float()
        if module.has_critic:
            values = module.compute_values(batch)
            vf_loss = torch.clamp((values - batch[Postprocessing.VALUE_TARGETS]) ** 2, 0, config.vf_clip_param)
            vf_loss = (vf_loss * step_valid).sum() / step_valid.sum().clamp(min=1.0)
        else:
            vf_loss = torch.zeros((), device=step_valid.device)
        entropy_coeff = self.entropy_coeff_schedulers_per_module[module_id].get_current_value()
        total = policy_loss + config.vf_loss_coeff * vf_loss - entropy_coeff * entropy
        self.metrics.log_dict(
            {
                POLICY_LOSS_KEY: policy_loss,
                VF_LOSS_KEY: vf_loss,
                ENTROPY_KEY: entropy,
                "approx_kl": approx_kl,
                "rows_per_sample": n_valid / step_valid.sum().clamp(min=1.0),
            },
            key=module_id,
            window=1,
        )
        return total
