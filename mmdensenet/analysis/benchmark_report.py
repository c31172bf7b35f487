"""Presenting benchmark results: the title that says what ran where, a Markdown table and bar charts.

Results are ``(Variant, dict)`` pairs, the dicts holding what ``mmdensenet.analysis.benchmark``
measures (``train_step_s``, ``train_images_per_s_median``, ``train_memory_mb``, ...) and, where
searched, ``max_batch``.
"""

import platform
import re
from dataclasses import replace
from pathlib import Path
from typing import Optional

import torch
from matplotlib.figure import Figure

from .benchmark import IMPLEMENTATIONS, Setting, Variant, quartiles

Results = list[tuple[Variant, dict]]


def _machine_name(device: str, threads: int) -> str:
    if device.startswith('cuda'):
        return torch.cuda.get_device_name(torch.device(device))
    model = re.search(r'model name\s*:\s*(.+)', Path('/proc/cpuinfo').read_text())
    return f'{model.group(1).strip() if model else platform.processor()}, {threads} threads'


def title(setting: Setting, compiled: bool) -> str:
    """The net, batch, image size, machine and torch version; the compiler's backend if ``compiled``."""
    arch = setting.backbone.get('arch', '121')
    net = f'DenseNet-{arch}' if isinstance(arch, str) else 'custom DenseNet'
    text = (
        f'{net}, batch {setting.batch_size}, {setting.img_size} px, fp32 unless AMP, '
        f'{_machine_name(setting.device, setting.threads)}, torch {torch.__version__}'
    )
    return text + (f', compiled with {setting.compile_backend}' if compiled else '')


def _ratio(value: Optional[float], reference: Optional[float]) -> str:
    return f'{value / reference:.2f}' if value and reference else '-'


def format_table(results: Results) -> str:
    """A Markdown table; ratios (of the median steps) are against torchvision's plain model in the same set-up.

    Per kind of step: images per second of the median step and of the fastest, and the spread (the
    interquartile range of the step times over their median); memory at its peak and at rest.
    """
    compiled = any(v.compiled for v, _ in results)
    searched = any('max_batch' in r for _, r in results)
    columns = ['variant', 'train img/s', 'fastest', 'spread', 'infer img/s', 'fastest', 'spread']
    columns += ['train peak MB', 'at rest MB']
    columns += ['first train / infer step s'] * compiled + ['max batch'] * searched
    columns += ['train time x', 'infer time x', 'memory x']
    rows = ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
    by_variant = dict(results)
    for variant, r in results:
        reference = by_variant.get(replace(variant, implementation='torchvision', memory_efficient=False), {})
        cells = [variant.name]
        for kind in ('train', 'infer'):
            cells += [
                f'{r[f"{kind}_images_per_s_median"]:.1f}',
                f'{r[f"{kind}_images_per_s"]:.1f}',
                f'{100 * r[f"{kind}_spread"]:.1f}%',
            ]
        cells += [f'{r["train_memory_mb"]:.1f}', f'{r["rest_memory_mb"]:.1f}']
        cells += [f'{r["train_first_step_s"]:.3g} / {r["infer_first_step_s"]:.3g}'] * compiled
        cells += [str(r.get('max_batch', '-'))] * searched
        cells += [
            _ratio(reference.get('train_images_per_s_median'), r['train_images_per_s_median']),
            _ratio(reference.get('infer_images_per_s_median'), r['infer_images_per_s_median']),
            _ratio(r['train_memory_mb'], reference.get('train_memory_mb')),
        ]
        rows.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(rows)


def _whiskers(results: Results, kind: str) -> list[list[float]]:
    """From each median speed down to the speed of the third quartile's step time and up to the first's."""
    down, up = [], []
    for _, r in results:
        q1, median, q3 = quartiles(r[f'{kind}_step_s'])
        speed = r[f'{kind}_images_per_s_median']
        down.append(speed - speed * median / q3)
        up.append(speed * median / q1 - speed)
    return [down, up]


def plot(results: Results, title: str, out_file: Path) -> None:
    """Bar charts to a PNG: train and inference throughput of the median step (whiskers: the quartiles), train
    memory at its peak (at rest darker); the first train step if compiled, the largest batch if searched."""
    names = [v.name for v, _ in results]
    colours = [f'C{IMPLEMENTATIONS.index(v.implementation)}' for v, _ in results]
    panels = [
        ('train_images_per_s_median', 'train step, images/s (higher is better)'),
        ('infer_images_per_s_median', 'inference, images/s (higher is better)'),
        ('train_memory_mb', 'train step memory, MB, peak and at rest (lower is better)'),
    ]
    if any(v.compiled for v, _ in results):
        panels.append(('train_first_step_s', 'first train step (compiles), s'))
    if any('max_batch' in r for _, r in results):
        panels.append(('max_batch', 'largest batch that trains'))
    figure = Figure(figsize=(5.3 * len(panels), 1.2 + 0.35 * len(results)), layout='tight')
    axes = figure.subplots(1, len(panels), sharey=True)
    for ax, (key, label) in zip(axes, panels):
        values = [r.get(key, 0) for _, r in results]
        labels = [f'{r[key]:.4g}' if isinstance(r.get(key), float) else str(r.get(key, '-')) for _, r in results]
        whiskers = _whiskers(results, key.split('_')[0]) if key.endswith('_images_per_s_median') else None
        bars = ax.barh(names, values, color=colours, xerr=whiskers)
        ax.bar_label(bars, labels=labels, fontsize=8)
        if key == 'train_memory_mb':
            ax.barh(names, [max(r['rest_memory_mb'], 0) for _, r in results], color='black', alpha=0.4)
        ax.set_xlabel(label)
    axes[0].invert_yaxis()  # first variant on top; the axes share y
    figure.suptitle(title)
    figure.savefig(out_file, format='png', dpi=100)
