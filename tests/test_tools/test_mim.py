"""mim on a regular install of this checkout: train, crash, resume, test, search; mmpretrain's model hub.

The package is installed with ``pip install --target`` into a temporary folder that leads
PYTHONPATH, so the tests see what ``pip install .`` makes of the current files.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmpretrain import get_model, list_models
from mmpretrain.apis import ModelHub

from mmdensenet.analysis.curves import find_scalar_log, read_scalar_log
from mmdensenet.models import DenseNet
from tests.cli_helpers import REPO, assert_ok, run

MIM = Path(sys.executable).with_name('mim')
ARCHS = ('121', '169', '201', '161')


@pytest.fixture(scope='module')
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A regular install of a copy of the checkout (the build must not write into the checkout)."""
    source = tmp_path_factory.mktemp('source') / 'mmdensenet'
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns('.git', 'data', 'work_dirs', 'build', '*.egg-info'))
    target = tmp_path_factory.mktemp('site-packages')
    pip = [sys.executable, '-m', 'pip', 'install', '--quiet', '--no-deps', '--no-build-isolation']
    subprocess.run([*pip, '--target', str(target), str(source)], check=True, capture_output=True)
    return target


def mim(installed: Path, *args: object, env: dict = {}) -> subprocess.CompletedProcess:
    return run(MIM, *args, pythonpath=installed, env=env)


def test_install_ships_configs_tools_and_model_index(installed: Path) -> None:
    mim_dir = installed / 'mmdensenet' / '.mim'
    for name in ('configs/densenet121_4xb256_in1k.py', 'configs/metafile.yml', 'model-index.yml', 'tools/train.py'):
        assert (mim_dir / name).read_bytes() == (REPO / name).read_bytes(), name


def test_train_crash_resume_then_test(installed: Path, crashing_config: Path, tmp_path: Path) -> None:
    work_dir = tmp_path / 'work_dir'
    crashed = mim(installed, 'train', 'mmdensenet', crashing_config, '--work-dir', work_dir,
                  env={'CRASH_AFTER_EPOCH': '2'})  # fmt: skip
    assert crashed.returncode != 0
    assert str(installed / 'mmdensenet' / '.mim' / 'tools' / 'train.py') in crashed.stdout
    assert {p.name for p in work_dir.glob('*.pth')} == {'epoch_1.pth', 'epoch_2.pth'}
    first_run = read_scalar_log(find_scalar_log(work_dir))

    resumed = mim(installed, 'train', 'mmdensenet', crashing_config, '--work-dir', work_dir, '--resume')
    assert_ok(resumed)
    assert 'resumed epoch: 2, iter: 12' in resumed.stdout
    second_run = read_scalar_log(find_scalar_log(work_dir))
    assert [r['step'] for r in second_run.train] == list(range(13, 25))
    assert [r['step'] for r in second_run.val] == [3, 4]
    # Both runs together follow one linear warm-up: the schedule went on where it stopped.
    lrs = [r['lr'] for r in first_run.train + second_run.train]
    steps = [b - a for a, b in zip(lrs, lrs[1:])]
    assert steps == pytest.approx([steps[0]] * len(steps)) and steps[0] > 0

    tested = mim(installed, 'test', 'mmdensenet', crashing_config, '--checkpoint', work_dir / 'epoch_4.pth',
                 '--work-dir', tmp_path / 'test')  # fmt: skip
    assert_ok(tested)
    assert 'accuracy/top1' in tested.stdout


def test_train_finds_a_config_by_name_and_cfg_options_point_it_at_data(
    installed: Path, imagenet_folder: Path, tmp_path: Path
) -> None:
    """The full DenseNet-121 config from the installed package, on other data with a smaller batch."""
    options = [f'{loader}.dataset.data_root={imagenet_folder}' for loader in ('train_dataloader', 'val_dataloader')]
    options += ['train_dataloader.batch_size=4', 'val_dataloader.batch_size=6', 'train_cfg.max_epochs=1']
    result = mim(installed, 'train', 'mmdensenet', 'densenet121_4xb256_in1k.py', '--work-dir', tmp_path,
                 '--cfg-options', *options)  # fmt: skip
    assert_ok(result)
    assert str(installed / 'mmdensenet' / '.mim' / 'configs' / 'densenet121_4xb256_in1k.py') in result.stdout
    log = read_scalar_log(find_scalar_log(tmp_path))
    assert log.train[-1]['step'] == 3  # 12 images in batches of 4
    assert [r['step'] for r in log.val] == [1]


def test_search_lists_the_four_imagenet_models(installed: Path, tmp_path: Path) -> None:
    result = mim(installed, 'search', 'mmdensenet', '--json', tmp_path / 'models.json')
    assert_ok(result)
    fields = json.loads((tmp_path / 'models.json').read_text())
    models = {name: {field: values[name] for field, values in fields.items()} for name in fields['config']}
    weights = 'https://download.openmmlab.com/mmclassification/v0/densenet/densenet{}_4xb256_in1k_20220426-{}.pth'
    assert models == {
        f'mmdensenet_densenet{arch}_3rdparty_in1k': dict(
            models[f'mmdensenet_densenet{arch}_3rdparty_in1k'],
            config=f'configs/densenet{arch}_4xb256_in1k.py',
            parameters=params,
            flops=flops,
            weight=weights.format(arch, digest),
            **{'imagenet-1k/top_1_accuracy': top1, 'imagenet-1k/top_5_accuracy': top5},
        )
        for arch, params, flops, top1, top5, digest in (
            ('121', 7_978_856, 2_881_695_488, 74.96, 92.21, '07450f99'),
            ('169', 14_149_480, 3_416_860_160, 76.08, 93.11, 'a2889902'),
            ('201', 20_013_928, 4_365_236_736, 77.32, 93.64, '05cae4ef'),
            ('161', 28_681_000, 7_816_363_968, 77.61, 93.83, 'ee6a80a9'),
        )
    }


@pytest.fixture
def model_hub(monkeypatch: pytest.MonkeyPatch) -> type[ModelHub]:
    """mmpretrain's ModelHub with only mmpretrain's own models registered, as a fresh process has them."""
    monkeypatch.setattr(ModelHub, '_models_dict', {})
    monkeypatch.setattr(ModelHub, '_ModelHub__mmpretrain_registered', False)
    assert 'densenet121_3rdparty_in1k' in list_models('densenet*')  # registers mmpretrain's models
    return ModelHub


@pytest.mark.parametrize('where', ['checkout', 'installed'])
def test_mmpretrains_model_hub_takes_our_index_beside_its_own(
    model_hub: type[ModelHub], installed: Path, where: str
) -> None:
    root = REPO if where == 'checkout' else installed / 'mmdensenet' / '.mim'
    model_hub.register_model_index(root / 'model-index.yml', config_prefix=root)
    with pytest.raises(ValueError, match='is conflict'):  # the check that our former names failed
        model_hub.register_model_index(root / 'model-index.yml', config_prefix=root)

    for arch in ARCHS:
        ours = model_hub.get(f'mmdensenet_densenet{arch}_3rdparty_in1k')
        assert Path(ours.config.filename) == root / 'configs' / f'densenet{arch}_4xb256_in1k.py'
        assert (ours.config.model.backbone.type, ours.config.model.backbone.arch) == ('mmdensenet.DenseNet', arch)
        theirs = model_hub.get(f'densenet{arch}_3rdparty_in1k')
        assert theirs.config.model.backbone.type == 'DenseNet'
        assert ours.weights == theirs.weights  # mmpretrain's checkpoint of torchvision's weights

    model = get_model('mmdensenet_densenet121_3rdparty_in1k')
    assert isinstance(model.backbone, DenseNet)
    reference = get_model('densenet121_3rdparty_in1k')
    assert {k: v.shape for k, v in model.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()
    }
    model.load_state_dict(reference.state_dict(), strict=True)
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(images), reference.eval()(images))


def test_mim_puts_its_own_traceback_below_our_line(installed: Path, tmp_path: Path) -> None:
    """What the docs say remains mim's: the tool's one line, then openmim's CalledProcessError, status 1."""
    result = run(MIM, 'train', 'mmdensenet', 'densenet121_4xb256_in1k.py', '--cfg-options', 'model.backbone.arch=122',
                 pythonpath=installed, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 1
    ours = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert len(ours) == 1 and ours[0].startswith('error: model.backbone: arch must be one of')
    assert result.stderr.strip().splitlines()[-1].startswith('subprocess.CalledProcessError')


@pytest.mark.parametrize(
    ('args', 'expected', 'status'),
    [
        (['train', 'densenet121_4xb256_in1k.py', '--cfg-options', 'model.backbone.arch=122'],
         'error: model.backbone: arch must be one of', 1),
        (['train', 'no_such_config.py'],
         "error: mim train: The path no_such_config.py doesn't exist and we can not find the config file", 1),
        (['train'], "error: mim train: Missing argument 'CONFIG'", 1),
        (['test', 'densenet121_4xb256_in1k.py'], 'error: mim test: You must specify the checkpoint path', 1),
        (['run', 'get_flops'], 'error: the following arguments are required: CONFIG', 2),
        (['run', 'no_such_tool'], 'error: mim run: No script in codebase mmdensenet has suffix /no_such_tool.py', 1),
        (['search'], 'error: usage: python -m mmdensenet {train,test,run} ARGS...', 1),
    ],
    ids=['tool error', 'missing config', 'no config', 'test without checkpoint', 'tool usage', 'no tool', 'other'],
)  # fmt: skip
def test_python_m_mmdensenet_ends_as_the_tool_ends(
    installed: Path, tmp_path: Path, args: list, expected: str, status: int
) -> None:
    """The same mim commands, with the tool's line and status as they were, and mim's refusals as one line."""
    result = run(sys.executable, '-m', 'mmdensenet', *args, pythonpath=installed, cwd=tmp_path)
    assert result.returncode == status, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), result.stderr[-3000:]


def test_python_m_mmdensenet_runs_what_mim_runs(
    installed: Path, trained: Path, tiny_config: Path, tmp_path: Path
) -> None:
    result = run(sys.executable, '-m', 'mmdensenet', 'test', tiny_config, '--checkpoint', trained / 'epoch_2.pth',
                 '--work-dir', tmp_path / 'test', pythonpath=installed, cwd=tmp_path)  # fmt: skip
    assert_ok(result)
    assert str(installed / 'mmdensenet' / '.mim' / 'tools' / 'test.py') in result.stdout
    assert 'accuracy/top1' in result.stdout
