"""mmdensenet.analysis.benchmark_report on hand-made results: title, table ratios and chart panels."""

from pathlib import Path

import torch
from PIL import Image

from mmdensenet.analysis.benchmark import Setting, Variant
from mmdensenet.analysis.benchmark_report import format_table, plot, title


def result(train: float, infer: float, memory: float, **more) -> dict:
    """Hand-made results: the median step takes twice the fastest's time."""
    return dict(
        train_step_s=[1.0, 2.0, 2.0, 2.0, 3.0],
        train_images_per_s=train,
        train_images_per_s_median=train / 2,
        train_spread=0.25,
        infer_step_s=[1.0],
        infer_images_per_s=infer,
        infer_images_per_s_median=infer / 2,
        infer_spread=0.0,
        train_memory_mb=memory,
        rest_memory_mb=memory / 10,
        train_first_step_s=1.5,
        infer_first_step_s=0.25,
        **more,
    )


RESULTS = [
    (Variant('mmdensenet'), result(20.0, 10.0, 50.0)),
    (Variant('mmdensenet', memory_efficient=True), result(8.0, 10.0, 25.0)),
    (Variant('torchvision'), result(10.0, 20.0, 100.0)),
    (Variant('mmdensenet', amp=True), result(30.0, 40.0, 20.0)),  # no torchvision amp to compare with
]


def test_title_says_what_ran_where() -> None:
    setting = Setting(dict(arch='169'), 'cpu', batch_size=4, img_size=64, threads=3, warmup=0, iters=1)
    text = title(setting, compiled=False)
    assert text.startswith('DenseNet-169, batch 4, 64 px, fp32 unless AMP, ')
    assert text.endswith(f', 3 threads, torch {torch.__version__}')
    custom = Setting(dict(arch=dict(growth_rate=8, depths=(1, 1), init_channels=16)), 'cpu', 2, 32, 1, 0, 1, 'eager')
    assert title(custom, compiled=True).startswith('custom DenseNet, batch 2, 32 px')
    assert title(custom, compiled=True).endswith(', compiled with eager')


def test_table_ratios_of_median_steps_compare_with_torchvision_plain_in_the_same_setup() -> None:
    lines = format_table(RESULTS).splitlines()
    assert lines[0] == (
        '| variant | train img/s | fastest | spread | infer img/s | fastest | spread | train peak MB | at rest MB '
        '| train time x | infer time x | memory x |'
    )
    assert lines[1] == '|' + '---|' * 12
    assert lines[2:] == [
        '| mmdensenet plain | 10.0 | 20.0 | 25.0% | 5.0 | 10.0 | 0.0% | 50.0 | 5.0 | 0.50 | 2.00 | 0.50 |',
        '| mmdensenet memory_efficient | 4.0 | 8.0 | 25.0% | 5.0 | 10.0 | 0.0% | 25.0 | 2.5 | 1.25 | 2.00 | 0.25 |',
        '| torchvision plain | 5.0 | 10.0 | 25.0% | 10.0 | 20.0 | 0.0% | 100.0 | 10.0 | 1.00 | 1.00 | 1.00 |',
        '| mmdensenet plain amp | 15.0 | 30.0 | 25.0% | 20.0 | 40.0 | 0.0% | 20.0 | 2.0 | - | - | - |',
    ]


def test_table_adds_first_steps_when_compiled_and_the_batches_searched() -> None:
    results = [
        (Variant('torchvision'), result(10.0, 20.0, 100.0, max_batch=64)),
        (Variant('torchvision', compiled=True), result(20.0, 20.0, 100.0)),
    ]
    lines = format_table(results).splitlines()
    assert '| at rest MB | first train / infer step s | max batch | train time x |' in lines[0]
    assert lines[2].endswith('| 100.0 | 10.0 | 1.5 / 0.25 | 64 | 1.00 | 1.00 | 1.00 |')
    assert lines[3].endswith('| 100.0 | 10.0 | 1.5 / 0.25 | - | 1.00 | 1.00 | 1.00 |')  # its own reference: compiled


def test_chart_has_a_panel_per_measure(tmp_path: Path) -> None:
    three, five = tmp_path / 'three.png', tmp_path / 'five.png'
    plot(RESULTS, 'three panels', three)
    searched_and_compiled = [*RESULTS, (Variant('mmdensenet', compiled=True), result(40.0, 40.0, 50.0, max_batch=8))]
    plot(searched_and_compiled, 'five panels', five)
    with Image.open(three) as small, Image.open(five) as large:
        assert small.format == large.format == 'PNG'
        assert small.width > small.height and large.width > small.width and large.height > small.height
