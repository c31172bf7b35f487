"""AUROC against scikit-learn's roc_auc_score, alone and as a registered metric in mmengine's Evaluator."""

import logging
import math

import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmpretrain.structures import DataSample
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

from mmdensenet.evaluation.metrics import auroc, average_ranks

CLASSES = ('Atelectasis', 'Cardiomegaly', 'Effusion', 'Hernia')


def random_multilabel(seed: int, n: int = 60, classes: int = len(CLASSES), decimals: int = 1):
    """Scores rounded to ``decimals`` (many ties) and 0/1 targets that the scores partly predict."""
    rng = np.random.default_rng(seed)
    targets = (rng.random((n, classes)) < rng.uniform(0.1, 0.6, classes)).astype(np.float64)
    scores = np.round(rng.random((n, classes)) * 0.7 + 0.3 * targets, decimals)
    return scores, targets


@pytest.mark.parametrize('seed', range(5))
def test_average_ranks_are_scipys(seed: int) -> None:
    values = np.random.default_rng(seed).integers(0, 8, 40).astype(float)
    np.testing.assert_array_equal(average_ranks(values), rankdata(values, method='average'))


@pytest.mark.parametrize('decimals', [1, 2, 8])
@pytest.mark.parametrize('seed', range(10))
def test_auroc_is_sklearns(seed: int, decimals: int) -> None:
    scores, targets = random_multilabel(seed, decimals=decimals)
    expected = [roc_auc_score(targets[:, c], scores[:, c]) for c in range(len(CLASSES))]
    np.testing.assert_allclose(auroc(scores, targets), expected, rtol=0, atol=1e-12)


def test_all_tied_scores_give_one_half_and_perfect_ones_give_one() -> None:
    targets = np.array([[0.0], [1.0], [0.0], [1.0]])
    assert auroc(np.full((4, 1), 0.3), targets).tolist() == [0.5]
    assert auroc(targets * 0.9, targets).tolist() == [1.0]
    assert auroc(1 - targets, targets).tolist() == [0.0]


def test_a_class_with_one_label_value_has_none() -> None:
    scores, targets = random_multilabel(0)
    targets[:, 1], targets[:, 3] = 0, 1
    result = auroc(scores, targets)
    assert np.isnan(result[[1, 3]]).all() and not np.isnan(result[[0, 2]]).any()


def samples(scores: np.ndarray, targets: np.ndarray, as_indices: bool) -> list[dict]:
    """mmpretrain's data samples as a multi-label head's predict gives them to the evaluator."""
    out = []
    for score, target in zip(scores, targets):
        sample = DataSample().set_pred_score(torch.from_numpy(score).float())
        if as_indices:
            sample.set_gt_label(np.flatnonzero(target).tolist())
        else:
            sample.set_gt_score(torch.from_numpy(target).float())
        out.append(sample.to_dict())
    return out


def evaluate(
    scores: np.ndarray, targets: np.ndarray, as_indices: bool = True, batch: int = 7, classes: tuple = CLASSES
) -> dict:
    init_default_scope('mmpretrain')
    evaluator = Evaluator([dict(type='mmdensenet.AUROC')])
    evaluator.dataset_meta = dict(classes=classes)
    all_samples = samples(scores, targets, as_indices)
    for start in range(0, len(all_samples), batch):
        evaluator.process(all_samples[start : start + batch])
    return evaluator.evaluate(len(all_samples))


@pytest.mark.parametrize('as_indices', [True, False], ids=['gt_label', 'gt_score'])
def test_registered_metric_reports_each_class_and_the_mean(as_indices: bool) -> None:
    scores, targets = random_multilabel(3, decimals=2)
    metrics = evaluate(scores, targets, as_indices)
    # pred_score goes through float32 in the data sample, as it does from a model.
    expected = [roc_auc_score(targets[:, c], scores[:, c].astype(np.float32)) for c in range(len(CLASSES))]
    assert sorted(metrics) == sorted(['auroc/mean', *(f'auroc/{name}' for name in CLASSES)])
    assert [metrics[f'auroc/{name}'] for name in CLASSES] == pytest.approx(expected, abs=1e-12)
    assert metrics['auroc/mean'] == pytest.approx(np.mean(expected), abs=1e-12)


def test_classes_are_numbered_unless_the_dataset_names_each() -> None:
    scores, targets = random_multilabel(6)
    numbered = ['auroc/0', 'auroc/1', 'auroc/2', 'auroc/3', 'auroc/mean']
    for classes in ((), CLASSES[:3], (*CLASSES, 'Edema')):
        assert sorted(evaluate(scores, targets, classes=classes)) == numbered


def test_undefined_classes_are_nan_left_out_of_the_mean_and_named() -> None:
    scores, targets = random_multilabel(4)
    targets[:, 3] = 0  # no sample has a hernia
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        metrics = evaluate(scores, targets)
    finally:
        logger.removeHandler(handler)
    assert math.isnan(metrics['auroc/Hernia'])
    assert [r.levelname for r in records] == ['WARNING'] and records[0].getMessage().endswith('mean: Hernia')
    defined = [roc_auc_score(targets[:, c], scores[:, c].astype(np.float32)) for c in range(3)]
    assert metrics['auroc/mean'] == pytest.approx(np.mean(defined), abs=1e-12)

    targets[:] = 1
    assert all(math.isnan(value) for value in evaluate(scores, targets).values())


def test_soft_targets_are_refused() -> None:
    scores, targets = random_multilabel(5)
    targets[0, 0] = 0.7
    with pytest.raises(ValueError, match='AUROC needs 0/1 targets'):
        evaluate(scores, targets, as_indices=False)
