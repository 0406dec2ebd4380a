import math

import torch

from golden.metrics import RegressionMeter, SegmentationMeter


def test_segmentation_perfect_and_known_confusion():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 1]])
    m = SegmentationMeter(3)
    m.update(target.clone(), target)
    assert m.summary() == {"mIoU": 100.0, "pixel_acc": 100.0}
    m = SegmentationMeter(4)
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 3, 1]])
    m.update(pred, target)
    # class 0: tp 1, union 3; class 1: tp 3, union 4; class 2: tp 1, union 2; class 3 absent
    assert math.isclose(m.summary()["mIoU"], (1 / 3 + 3 / 4 + 1 / 2) / 3 * 100)
    assert math.isclose(m.summary()["pixel_acc"], 5 / 7 * 100)


def test_regression_ignores_invalid_pixels():
    target = torch.tensor([2.0, 4.0, 0.0])
    pred = torch.tensor([3.0, 4.0, 100.0])
    m = RegressionMeter()
    m.update(pred, target)
    s = m.summary()
    assert math.isclose(s["rmse"], math.sqrt(0.5))
    assert math.isclose(s["abs_rel"], 0.25)
