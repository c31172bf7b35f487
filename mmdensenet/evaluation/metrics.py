"""AUROC, the metric multi-label medical imaging reports (mmpretrain 1.2 has none)."""

from collections.abc import Sequence
from typing import Optional

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from ..registry import METRICS


def average_ranks(values: np.ndarray) -> np.ndarray:
    """The ranks (1 to n) of ``values``, tied values sharing the mean of the ranks they span."""
    order = np.argsort(values, kind='stable')
    ordered = values[order]
    starts_group = np.r_[True, ordered[1:] != ordered[:-1]]
    bounds = np.flatnonzero(np.r_[starts_group, True])  # where each group of equal values starts, then n
    group_ranks = (bounds[:-1] + 1 + bounds[1:]) / 2  # the mean of ranks start+1 .. end
    ranks = np.empty(len(values))
    ranks[order] = group_ranks[np.cumsum(starts_group) - 1]
    return ranks


def auroc(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Area under the ROC curve of each class, from its rank statistic (Mann-Whitney U).

    The AUROC of a class is the chance that a random positive scores above a random negative,
    a tie counting one half.

    Args:
        scores: (N, C) scores, higher meaning more likely positive.
        targets: (N, C) ground truth, 1 for positive and 0 for negative.

    Returns:
        (C,) AUROC per class; NaN for a class whose targets are all positive or all negative.
    """
    result = np.full(scores.shape[1], np.nan)
    for c in range(scores.shape[1]):
        positive = targets[:, c] == 1
        num_pos, num_neg = positive.sum(), (~positive).sum()
        if num_pos and num_neg:
            pos_rank_sum = average_ranks(scores[:, c])[positive].sum()
            result[c] = (pos_rank_sum - num_pos * (num_pos + 1) / 2) / (num_pos * num_neg)
    return result


@METRICS.register_module()
class AUROC(BaseMetric):
    """Per-class and mean area under the ROC curve of a multi-label classifier.

    Reports ``auroc/mean`` and ``auroc/<class name>`` (``auroc/<index>`` unless the dataset names
    as many classes as the model scores). A class whose ground truth holds one value (no positive
    or no negative sample) has no AUROC: it is reported as NaN, left out of the mean and named in
    one warning; the mean is NaN when no class has one.

    Args:
        collect_device: Where the results are gathered in distributed evaluation.
        prefix: The prefix of the keys; ``auroc`` when None.
    """

    default_prefix: Optional[str] = 'auroc'

    def __init__(self, collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)

    def process(self, data_batch: object, data_samples: Sequence[dict]) -> None:
        """Keeps each sample's scores and its 0/1 targets (its ``gt_score``, else its ``gt_label`` indices)."""
        for sample in data_samples:
            scores = sample['pred_score'].detach().cpu()
            if 'gt_score' in sample:
                targets = sample['gt_score'].detach().cpu()
            else:
                targets = torch.zeros_like(scores)
                targets[torch.as_tensor(sample['gt_label'], dtype=torch.long)] = 1
            self.results.append((scores, targets))

    def compute_metrics(self, results: list) -> dict[str, float]:
        """The mean AUROC over the classes that have one, and each class's."""
        scores = torch.stack([s for s, _ in results]).double().numpy()
        targets = torch.stack([t for _, t in results]).double().numpy()
        if not np.isin(targets, (0, 1)).all():
            raise ValueError('AUROC needs 0/1 targets; got soft or ignored labels (gt_score values other than 0 and 1)')
        per_class = auroc(scores, targets)
        classes = (self.dataset_meta or {}).get('classes') or ()
        names = classes if len(classes) == len(per_class) else range(len(per_class))
        undefined = [str(name) for name, value in zip(names, per_class) if np.isnan(value)]
        if undefined:
            MMLogger.get_current_instance().warning(
                f'AUROC is undefined for {len(undefined)} class(es) whose samples are all positive or all '
                f'negative, reported as NaN and left out of the mean: {", ".join(undefined)}'
            )
        mean = float(np.nanmean(per_class)) if len(undefined) < len(per_class) else float('nan')
        return {'mean': mean, **{str(name): float(value) for name, value in zip(names, per_class)}}
