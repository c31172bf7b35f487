"""Presenting benchmark results: the title that says what ran where, a Markdown table and bar charts.

Results are ``(Variant, dict)`` pairs, the dicts holding what ``mmdensenet.analysis.benchmark``
measures (``train_images_per_s``, ``train_memory_mb``, ...) and, where searched, ``max_batch``.
"""

import platform
import re
from dataclasses import replace
from pathlib import Path
from typing import Optional

import torch
from matplotlib.figure import Figure

from .benchmark import IMPLEMENTATIONS, Setting, Variant

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
    """A Markdown table; ratios (of the fastest steps) are against torchvision's plain model in the same set-up."""
    compiled = any(v.compiled for v, _ in results)
    searched = any('max_batch' in r for _, r in results)
    columns = ['variant', 'train img/s', 'median', 'infer img/s', 'median', 'train peak MB']
    columns += ['first train / infer step s'] * compiled + ['max batch'] * searched
    columns += ['train time x', 'infer time x', 'memory x']
    rows = ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
    by_variant = dict(results)
    for variant, r in results:
        reference = by_variant.get(replace(variant, implementation='torchvision', memory_efficient=False), {})
        cells = [
            variant.name,
            f'{r["train_images_per_s"]:.1f}',
            f'{r["train_images_per_s_median"]:.1f}',
            f'{r["infer_images_per_s"]:.1f}',
            f'{r["infer_images_per_s_median"]:.1f}',
            f'{r["train_memory_mb"]:.1f}',
        ]
        cells += [f'{r["train_first_step_s"]:.3g} / {r["infer_first_step_s"]:.3g}'] * compiled
        cells += [str(r.get('max_batch', '-'))] * searched
        cells += [
            _ratio(reference.get('train_images_per_s'), r['train_images_per_s']),
            _ratio(reference.get('infer_images_per_s'), r['infer_images_per_s']),
            _ratio(r['train_memory_mb'], reference.get('train_memory_mb')),
        ]
        rows.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(rows)


def plot(results: Results, title: str, out_file: Path) -> None:
    """Bar charts to a PNG: train and inference throughput, train peak memory; first train step, max batch."""
    names = [v.name for v, _ in results]
    colours = [f'C{IMPLEMENTATIONS.index(v.implementation)}' for v, _ in results]
    panels = [
        ('train_images_per_s', 'train step, images/s (higher is better)'),
        ('infer_images_per_s', 'inference, images/s (higher is better)'),
        ('train_memory_mb', 'train step peak memory, MB (lower is better)'),
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
        ax.barh(names, values, color=colours)
        ax.bar_label(ax.containers[0], labels=labels, fontsize=8)
        ax.set_xlabel(label)
    axes[0].invert_yaxis()  # first variant on top; the axes share y
    figure.suptitle(title)
    figure.savefig(out_file, format='png', dpi=100)
