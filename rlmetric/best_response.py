"""The local best response: a cross-entropy toward each decision's locally best value, weighted
by what the metric gains from it (the default estimator for count rewards). Re-exported by
[`rlmetric.estimators`][rlmetric.estimators]."""

from __future__ import annotations

import keras
import tensorflow as tf

from rlmetric._distribute import sum_over_replicas
from rlmetric.estimator_base import (
    Estimator,
    EstimatorOutput,
    local_rewards_of,
    require_local_rewards,
)

__all__ = ["LocalBestResponse"]


@keras.saving.register_keras_serializable(package="rlmetric")
class LocalBestResponse(Estimator):
    """Cross-entropy toward each decision's locally best value, weighted by what the metric
    gains from it: a policy-improvement step for rewards computed from confusion counts.

    For every element ``i`` (a label, an example, a pixel) and every value ``v`` it may take,
    [`rlmetric.rewards.CountReward.local_rewards`][rlmetric.rewards.CountReward.local_rewards] gives
    the reward of the batch with ``a_i``
    set to ``v`` and the other decisions held at a context: the policy's mode
    (``context="mode"``, the default: one deterministic set, the decisions that are scored at
    prediction time) or the ``K`` sampled sets (``context="samples"``, averaged over them).

    ``context="coupled"`` draws the decisions, seen as one-vs-rest pairs of an element and a
    count group, with one shared uniform instead: each pair is wrong with its probability, and the
    wrong sets are nested in the order of decreasing error. An element's weight is the reward
    lost when its pairs turn wrong at their places in that order
    ([`rlmetric.rewards.CountReward.coupled_gains`][rlmetric.rewards.CountReward.coupled_gains]):
    the worst decisions get the gains of a
    batch that is still mostly right. For the Jaccard index these gains are the Lovasz gradient
    (Berman et al. 2018). Here they weight a cross-entropy, not the Lovasz loss's linear
    form. Count rewards with standard confusion counts only (not ``Accuracy``). Cost: a sort of
    each group's pairs for macro and samples averages (the mean IoU when every class occurs in
    the batch), else two sorts of the ``N P`` (element, group) pairs of the global batch
    (``P = C`` for ``C`` classes; an all-gather under ``tf.distribute``), and ``O(N P)`` memory.
    With ``R_i(v)`` that reward,

    * the best response is ``a*_i = argmax_v R_i(v)``;
    * its weight is the mean gain over the values the policy would otherwise take,
      ``w_i = sum_{v != a*} p_i(v) (R_i(a*) - R_i(v)) / sum_{v != a*} p_i(v)`` (for a Bernoulli
      decision simply ``|R_i(1) - R_i(0)|``);
    * the loss is ``-sum_i w_i log p_i(a*_i) / sum_i w_i`` with ``w`` held constant: a weighted
      mean cross-entropy, on the scale of an ordinary cross-entropy loss whatever the metric,
      so one learning rate fits every task (``normalize=False`` keeps the raw sum).

    What it optimizes. It is not an unbiased gradient of ``E[R]`` (``LocalExpectation``
    is): the gradient of ``E[R]`` with respect to a logit carries the policy's own
    probability (``p (1 - p) (R_1 - R_0)`` for a Bernoulli logit), so a confidently wrong
    decision receives almost no signal. Here the log removes that factor, as cross-entropy's
    does, and every element is pushed toward its best response with a strength set by the
    metric. A fixed point has every element either at its best response with probability one
    or at zero weight (indifferent). For the count metrics, correcting one decision never lowers
    the score, so ``a*`` is the label and the method is a cross-entropy whose per-element
    weights are the metric's marginal gains; at its population optimum a Bernoulli decision is
    positive where ``P(y=1|x) > w_0 / (w_0 + w_1)``. For F1 that ratio is ``F1 / 2`` and for
    IoU (Jaccard) ``J / (1 + J)`` -- the Bayes-optimal thresholds of those metrics (Lipton et
    al. 2014; Nan et al. 2012) -- so decisions at logit 0 need no tuned threshold. For accuracy
    all gains are equal and it is plain cross-entropy.

    Only for [`rlmetric.rewards.CountReward`][rlmetric.rewards.CountReward] rewards; the baseline is
    ignored. Cost: that
    of ``LocalExpectation``, ``O(N * V)`` with ``context="mode"`` (``O(K * N * V)`` with
    ``"samples"``). With the mode as context nothing is sampled: ``num_samples`` is unused and
    the logged ``reward`` is that of the mode.

    Args:
        context: ``"mode"`` (default), ``"samples"`` (the ``K`` policy samples) or
            ``"coupled"`` (one shared uniform for all decisions).
        normalize: divide by the sum of the weights over the (global) batch.

    References:
        Titsias & Lazaro-Gredilla (2015), Local expectation gradients for black box variational
        inference (the per-element rewards). Lipton, Elkan & Naryanaswamy (2014), Optimal
        thresholding of classifiers to maximize F1 measure.

    Examples:
        A hand-computed case: three examples, F1 of the mode decisions ``[1, 0, 0]`` against
        labels ``[1, 0, 1]`` is 2/3; setting the third decision to 1 would give 1, so it gets
        the largest weight, while the first two are already at their best response.

        >>> import tensorflow as tf
        >>> from rlmetric import baselines, estimators, policies, rewards
        >>> out = estimators.LocalBestResponse()(
        ...     tf.constant([[2.0], [-1.0], [-0.5]]), tf.constant([[1], [0], [1]]),
        ...     policy=policies.Bernoulli(), reward=rewards.F1(),
        ...     baseline=baselines.NoBaseline(), baseline_state=tf.zeros([0]),
        ...     num_samples=1)
        >>> round(float(out.rewards[0]), 4)  # the mode's F1
        0.6667
    """

    name = "best_response"
    CONTEXTS = ("mode", "samples", "coupled")

    @property
    def uses_samples(self) -> bool:  # the mode and the coupled context are one set each
        return self.context == "samples"

    def __init__(self, context: str = "mode", normalize: bool = True) -> None:
        if context not in self.CONTEXTS:
            raise ValueError(
                f"context must be one of {self.CONTEXTS}; received context={context!r}."
            )
        if not isinstance(normalize, bool):
            raise TypeError(f"normalize must be a bool; received normalize={normalize!r}.")
        self.context = context
        self.normalize = normalize

    def check(self, *, policy, reward, baseline, num_samples):
        require_local_rewards(self.name, reward, policy)
        if self.context == "coupled" and not reward.supports_coupled_gains:
            raise ValueError(
                f"estimator LocalBestResponse(context='coupled') cannot use the reward "
                f"{reward.name!r} (its counts are not per class, label or Bernoulli row); use "
                "context='mode'."
            )

    def weights_and_targets(
        self, logits, y_true, *, policy, reward, num_samples, seed=None
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """The best response of every element and what the metric gains from it, for logits
        ``[B, ...]`` (held constant) and labels ``[B, ...]``: weights ``[N]``, targets in the
        action shape ``[B, ...]``, and the context's decisions ``[K, B, ...]`` (``K = 1`` for
        the mode and the coupled context) whose reward the step logs."""
        fixed_logits = tf.stop_gradient(logits)
        if self.context == "coupled":
            actions = policy.mode(fixed_logits)[None]  # [1, B, ...]: the mode, for its reward
            targets = tf.cast(y_true, tf.int32)  # for count metrics the best response is the label
            weights = reward.coupled_gains(targets, policy.value_probs(fixed_logits))  # [N]
        else:
            if self.context == "mode":
                actions = policy.mode(fixed_logits)[None]  # [1, B, ...]
            else:
                actions = policy.sample(fixed_logits, num_samples, seed=seed)  # [K, B, ...]
            num_values = policy.value_probs(fixed_logits).shape[-1]
            local = local_rewards_of(reward, y_true, actions, num_values)
            local = tf.reduce_mean(local, axis=0)  # [N, V]
            local = tf.stop_gradient(local)
            best = tf.argmax(local, axis=-1, output_type=tf.int32)  # [N]
            gains = tf.gather(local, best, axis=1, batch_dims=1)[:, None] - local  # [N, V] >= 0
            probs = tf.reshape(policy.value_probs(fixed_logits), tf.shape(local))  # [N, V]
            others = probs * (1.0 - tf.one_hot(best, tf.shape(local)[-1], dtype=probs.dtype))
            weights = tf.math.divide_no_nan(
                tf.reduce_sum(others * tf.cast(gains, probs.dtype), axis=-1),
                tf.reduce_sum(others, axis=-1),
            )  # [N]
            targets = tf.reshape(best, tf.shape(actions)[1:])
        return tf.stop_gradient(weights), targets, actions

    def __call__(
        self, logits, y_true, *, policy, reward, baseline, baseline_state, num_samples, seed=None
    ):
        weights, targets, actions = self.weights_and_targets(
            logits, y_true, policy=policy, reward=reward, num_samples=num_samples, seed=seed
        )
        crossentropy = tf.reshape(policy.crossentropy(logits, targets), [-1])
        loss = tf.reduce_sum(tf.cast(weights, crossentropy.dtype) * crossentropy)
        if self.normalize:
            # the global batch's total, so that replicas' gradients add up to one weighted mean
            total = sum_over_replicas(tf.reduce_sum(weights))
            loss = tf.math.divide_no_nan(loss, tf.cast(total, loss.dtype))
        rewards = reward(y_true, actions)  # [K] (or [1]: the mode's reward)
        advantages = rewards - tf.reduce_mean(rewards)
        return EstimatorOutput(loss, rewards, advantages, baseline_state, actions)

    def get_config(self) -> dict:
        return {"context": self.context, "normalize": self.normalize}

    def __repr__(self) -> str:
        return f"LocalBestResponse(context={self.context!r}, normalize={self.normalize})"
