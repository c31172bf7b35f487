"""tools/train.py and tools/test.py on a tiny ImageNet-layout folder: runs, flags and users' mistakes."""

import json
import pickle
import re
import shutil
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from mmengine.config import Config
from PIL import Image

from mmdensenet.analysis.curves import find_scalar_log, read_scalar_log
from mmdensenet.apis import build_model
from mmdensenet.weights import read_checkpoint
from tests.cli_helpers import REPO, assert_ok, assert_one_line_error, python
from tests.image_helpers import write_png_claiming
from tests.weight_helpers import RunsCommand

TRAIN = REPO / 'tools' / 'train.py'
TEST = REPO / 'tools' / 'test.py'
DIGITS = REPO / 'configs' / 'digits' / 'densenet-bc-l22-k12_1xb64-16e_digits.py'


def test_train_validates_and_checkpoints_every_epoch(trained: Path) -> None:
    log = read_scalar_log(find_scalar_log(trained))
    assert [r['step'] for r in log.train] == list(range(1, 13))  # 12 images in batches of 2, 2 epochs
    assert [r['step'] for r in log.val] == [1, 2]
    assert all('accuracy/top1' in r and 'accuracy/top5' in r for r in log.val)
    assert {p.name for p in trained.glob('*.pth')} == {'epoch_1.pth', 'epoch_2.pth'}


def test_test_reproduces_the_last_validation_and_dumps_predictions(
    trained: Path, tiny_config: Path, tmp_path: Path
) -> None:
    out = tmp_path / 'predictions.pkl'
    result = python(TEST, tiny_config, trained / 'epoch_2.pth', '--work-dir', tmp_path / 'test', '--out', out)
    assert_ok(result)
    top1 = float(re.search(r'Epoch\(test\).*accuracy/top1: ([\d.]+)', result.stdout + result.stderr).group(1))
    assert top1 == pytest.approx(read_scalar_log(find_scalar_log(trained)).val[-1]['accuracy/top1'])
    predictions = pickle.loads(out.read_bytes())
    assert len(predictions) == 6  # the validation images
    assert {int(p['gt_label']) for p in predictions} == {0, 1, 2}


def write_config(path: Path, base: Path, text: str) -> Path:
    """A config that inherits ``base`` and adds ``text``."""
    path.write_text(f'_base_ = [{str(base)!r}]\n{text}')
    return path


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Checkpoints that tools must refuse: broken, of another model, carrying code, without training state."""
    root = tmp_path_factory.mktemp('checkpoints')
    broken = root / 'broken.pth'
    broken.write_bytes(b'PK\x03\x04 not really a zip')
    foreign = root / 'resnet18.pth'
    torch.save({'state_dict': torchvision.models.resnet18().state_dict()}, foreign)
    hostile = root / 'hostile.pth'
    torch.save({'state_dict': {}, 'meta': RunsCommand(f'touch {root / "pwned"}')}, hostile)
    return dict(root=root, broken=broken, foreign=foreign, hostile=hostile)


def assert_refused_safely(result, expected: str, root: Path) -> None:
    assert_one_line_error(result, expected)
    assert 'weights_only=False' not in result.stderr
    assert not (root / 'pwned').exists()


@pytest.mark.parametrize(
    ('case', 'config_text', 'args', 'expected'),
    [
        ('bad backbone arch', "model = dict(backbone=dict(arch='999'))", [], 'model.backbone: arch must be one of'),
        ('bad backbone argument', 'model = dict(backbone=dict(frozen_stages=9))', [], 'model.backbone: frozen_stages'),
        ('arch from the command line', '', ['--cfg-options', 'model.backbone.arch=999'], 'model.backbone: arch'),
        ('wrong head width', 'model = dict(head=dict(in_channels=64))', [], 'model.head: in_channels is 64'),
        ('unknown type', "model = dict(neck=dict(type='NoSuchNeck'))", [], 'model.neck: KeyError'),
        ('missing data', '', ['--cfg-options', 'train_dataloader.dataset.data_root=/nonexistent'],
         'train_dataloader.dataset: FileNotFoundError'),
        ('bad optimizer', 'optim_wrapper = dict(optimizer=dict(lr=-1.0))', [], 'optim_wrapper.optimizer: Invalid'),
        ('bad batch size', '', ['--cfg-options', 'train_dataloader.batch_size=0'], 'train_dataloader: batch_size'),
        ('malformed --cfg-options', '', ['--cfg-options', 'foo'], 'argument --cfg-options: expected KEY=VALUE'),
        ('unparsable --cfg-options', '', ['--cfg-options', 'a=[1,2'], 'argument --cfg-options: cannot parse'),
        ('--cfg-options into a number', '', ['--cfg-options', 'train_cfg.max_epochs.x=1'], '--cfg-options:'),
        ('--auto-scale-lr without its setting', 'auto_scale_lr = None', ['--auto-scale-lr'],
         'auto_scale_lr.base_batch_size'),
        ('unknown flag', '', ['--no-such-flag'], 'unrecognized arguments: --no-such-flag'),
        ('misspelt top-level key', '', ['--cfg-options', 'modle.backbone.arch=169'], '--cfg-options: modle is not'),
        ('unknown norm type', '', ['--cfg-options', 'model.backbone.norm_cfg.type=BNX'],
         "model.backbone.norm_cfg.type: no layer is registered as 'BNX'"),
        ('norm_cfg as a name', "model = dict(backbone=dict(norm_cfg='BN'))", [],
         "model.backbone.norm_cfg must be a dict with the type of a layer, e.g. dict(type='BN'), got 'BN'"),
        ('lr as text', '', ['--cfg-options', 'optim_wrapper.optimizer.lr=fast'],
         "optim_wrapper.optimizer.lr must be a number, got 'fast'"),
        ('no epochs', '', ['--cfg-options', 'train_cfg.max_epochs=0'], 'train_cfg.max_epochs must be a whole number'),
        ('unknown optimizer', '', ['--cfg-options', 'optim_wrapper.optimizer.type=SDG'],
         "optim_wrapper.optimizer.type: no optimizer is registered as 'SDG'"),
        ('arch field', '', ['--cfg-options', 'model.backbone.arch.growth_rate=0'],
         "model.backbone: arch['growth_rate'] must be a positive int, got 0"),
        ('arch depths', '', ['--cfg-options', 'model.backbone.arch.depths=3'],
         "model.backbone: arch['depths'] must be a non-empty sequence of positive ints"),
        ('no input channels', '', ['--cfg-options', 'model.backbone.in_channels=0'],
         'model.backbone: in_channels must be a positive int'),
    ],
)  # fmt: skip
def test_config_mistakes_are_one_line_naming_the_key(
    tiny_config: Path, tmp_path: Path, case: str, config_text: str, args: list, expected: str
) -> None:
    config = write_config(tmp_path / 'config.py', tiny_config, config_text)
    result = python(TRAIN, config, '--work-dir', tmp_path / 'run', *args)
    assert_one_line_error(result, expected)
    assert not list((tmp_path / 'run').glob('*.pth'))


def test_empty_config_and_bad_work_dirs(tiny_config: Path, tmp_path: Path) -> None:
    empty = tmp_path / 'empty.py'
    empty.write_text('')
    assert_one_line_error(python(TRAIN, empty), 'cannot train: it sets no model, train_dataloader')
    broken = tmp_path / 'broken.pth'
    broken.write_bytes(b'')
    assert_one_line_error(python(TEST, empty, broken), 'cannot test: it sets no model, test_dataloader')
    a_file = tmp_path / 'a_file'
    a_file.write_text('')
    assert_one_line_error(python(TRAIN, tiny_config, '--work-dir', a_file / 'run'), f'work_dir {a_file / "run"}')
    # The Runner saves the config it runs into the work dir under the config's name: not over the config itself.
    config = write_config(tmp_path / 'config.py', tiny_config, '')
    before = config.read_text()
    assert_one_line_error(python(TRAIN, config, '--work-dir', tmp_path), 'refusing to overwrite an input')
    assert config.read_text() == before


@pytest.mark.parametrize(
    ('lines', 'expected'),
    [
        ('', 'holds no samples'),
        ('class0/train_0.png 0\nclass0/train_1.png zero\n', "line 2 is 'class0/train_1.png zero': each line must be"),
    ],
)
def test_an_empty_or_malformed_annotation_file_is_named(
    tiny_config: Path, imagenet_folder: Path, tmp_path: Path, lines: str, expected: str
) -> None:
    data = shutil.copytree(imagenet_folder, tmp_path / 'data')
    (data / 'meta' / 'train.txt').write_text(lines)
    options = ['--cfg-options', f'train_dataloader.dataset.data_root={data}']
    result = python(TRAIN, tiny_config, '--work-dir', tmp_path / 'run', *options)
    assert_one_line_error(result, f'train_dataloader.dataset: {data}/meta/train.txt {expected}')
    assert 'MMDENSENET_TRACEBACK' not in result.stderr  # the data's fault, not code's


def test_an_image_claiming_too_many_pixels_is_refused_in_training(tmp_path: Path) -> None:
    """The digits pipeline passes images to the net whole: 20000x20000 would need about 38 GB."""
    data = tmp_path / 'digits'
    for split in ('train', 'val'):
        (data / split).mkdir(parents=True)
        for label in range(2):
            Image.fromarray(np.full((8, 8), label * 200, np.uint8)).save(data / split / f'{label}.png')
    (data / 'meta').mkdir()
    (data / 'meta' / 'train.txt').write_text('0.png 0\n1.png 1\nhuge.png 1\n')
    (data / 'meta' / 'val.txt').write_text('0.png 0\n1.png 1\n')
    huge = write_png_claiming(data / 'train' / 'huge.png', 20000, 20000)
    options = [f'{loader}.dataset.data_root={data}' for loader in ('train_dataloader', 'val_dataloader')]
    options.append('train_dataloader.num_workers=1')  # its error comes back from the worker process
    result = python(TRAIN, DIGITS, '--work-dir', tmp_path / 'run', '--cfg-options', *options)
    assert_one_line_error(result, f'image {huge}: its header claims more than 89,478,485 pixels')
    assert not list((tmp_path / 'run').glob('*.pth'))


def test_checkpoints_may_be_file_urls(trained: Path, tiny_config: Path, tmp_path: Path) -> None:
    url = f'file://{trained / "epoch_2.pth"}'
    result = python(
        TRAIN, tiny_config, '--work-dir', tmp_path, '--cfg-options', f'load_from={url}', 'train_cfg.max_epochs=1'
    )
    assert_ok(result)
    assert f'Load checkpoint from {trained / "epoch_2.pth"}' in result.stdout + result.stderr
    assert_ok(python(TEST, tiny_config, url, '--work-dir', tmp_path / 'test'))


@pytest.mark.parametrize('kind', ['broken', 'foreign', 'hostile'])
def test_resume_and_load_from_read_checkpoints_safely_and_check_them(
    tiny_config: Path, checkpoints: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    expected = {
        'broken': 'is not a PyTorch checkpoint',
        'foreign': 'does not fit the model: ',
        'hostile': 'refers to code',
    }[kind]
    if kind == 'foreign':
        expected = 'is not a training checkpoint'  # resuming needs the training state first, which resnet18 lacks
    path = checkpoints[kind]
    resumed = python(TRAIN, tiny_config, '--work-dir', tmp_path / 'resume', '--resume', path)
    assert_refused_safely(resumed, expected, checkpoints['root'])
    load_from = python(TRAIN, tiny_config, '--work-dir', tmp_path / 'load', '--cfg-options', f'load_from={path}')
    assert_refused_safely(load_from, 'does not fit the model' if kind == 'foreign' else expected, checkpoints['root'])
    # --resume without a path reads the work dir's checkpoints and finds none usable.
    work_dir = tmp_path / 'latest'
    work_dir.mkdir()
    (work_dir / 'last_checkpoint').write_text(str(path))
    latest = python(TRAIN, tiny_config, '--work-dir', work_dir, '--resume')
    assert_refused_safely(
        latest, 'is not a training checkpoint' if kind == 'foreign' else expected, checkpoints['root']
    )


def test_checkpoint_of_another_model_is_refused_everywhere(trained: Path, tiny_config: Path, tmp_path: Path) -> None:
    """The tiny net's own checkpoint against the same net with 5 classes: no silent random head."""
    five_classes = write_config(tmp_path / 'five.py', tiny_config, 'model = dict(head=dict(num_classes=5))')
    expected = 'does not fit the model: 2 tensors of another shape (e.g. head.fc.weight: (1000, '
    assert_one_line_error(python(TEST, five_classes, trained / 'epoch_2.pth'), expected)
    load_from = f'load_from={trained / "epoch_2.pth"}'
    result = python(TRAIN, five_classes, '--work-dir', tmp_path / 'run', '--cfg-options', load_from)
    assert_one_line_error(result, expected)
    result = python(TRAIN, five_classes, '--work-dir', tmp_path / 'run', '--resume', trained / 'epoch_2.pth')
    assert_one_line_error(result, expected)


def test_resume_needs_a_training_checkpoint(tiny_config: Path, tmp_path: Path) -> None:
    cfg = Config.fromfile(tiny_config)
    from mmdensenet.apis import build_model

    weights = tmp_path / 'weights.pth'
    torch.save({'state_dict': build_model(cfg).state_dict()}, weights)
    result = python(TRAIN, tiny_config, '--work-dir', tmp_path / 'run', '--resume', weights)
    assert_one_line_error(result, 'holds no training state (meta.epoch, meta.iter)')


def test_resume_refuses_a_damaged_optimizer_state(trained: Path, tiny_config: Path, tmp_path: Path) -> None:
    content = torch.load(trained / 'epoch_2.pth', weights_only=False)
    buffer = next(state['momentum_buffer'] for state in content['optimizer']['state'].values())
    buffer.view(-1)[0] = float('nan')
    damaged = tmp_path / 'epoch_2.pth'
    torch.save(content, damaged)
    before = damaged.read_bytes()
    result = python(TRAIN, tiny_config, '--work-dir', tmp_path / 'run', '--resume', damaged)
    assert_one_line_error(result, f'{damaged}: optimizer.state.')
    assert 'momentum_buffer holds NaN or infinite values, so the run cannot resume from it' in result.stderr
    assert damaged.read_bytes() == before and not list((tmp_path / 'run').glob('**/*.pth'))


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on localhost serving a folder; yields its URL and the folder."""
    folder = tmp_path / 'served'
    folder.mkdir()
    server = ThreadingHTTPServer(('127.0.0.1', 0), partial(SimpleHTTPRequestHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{server.server_address[1]}', folder
    server.shutdown()
    server.server_close()


def test_test_fetches_a_url_and_reads_it_weights_only(
    http_server: tuple[str, Path], trained: Path, tiny_config: Path, checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    url, folder = http_server
    (folder / 'hostile.pth').write_bytes(checkpoints['hostile'].read_bytes())
    (folder / 'good.pth').write_bytes((trained / 'epoch_2.pth').read_bytes())
    env = {'TORCH_HOME': str(tmp_path / 'torch_home')}
    result = python(TEST, tiny_config, f'{url}/hostile.pth', '--work-dir', tmp_path / 'test', env=env)
    assert_refused_safely(result, 'refers to code', checkpoints['root'])
    assert_one_line_error(python(TEST, tiny_config, f'{url}/missing.pth', env=env), 'cannot download')
    assert_one_line_error(python(TEST, tiny_config, 'http://127.0.0.1:9/x.pth', env=env), 'cannot download')
    assert_ok(python(TEST, tiny_config, f'{url}/good.pth', '--work-dir', tmp_path / 'test', env=env))
    assert (tmp_path / 'torch_home' / 'hub' / 'checkpoints' / 'good.pth').is_file()


def test_test_refuses_bad_outputs_and_checkpoints(
    trained: Path, tiny_config: Path, checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    checkpoint = tmp_path / 'weights.pkl'
    checkpoint.write_bytes((trained / 'epoch_2.pth').read_bytes())
    before = checkpoint.read_bytes()
    assert_one_line_error(python(TEST, tiny_config, checkpoint, '--out', checkpoint), 'refusing to overwrite an input')
    assert checkpoint.read_bytes() == before
    out = tmp_path / 'predictions.json'
    assert_one_line_error(python(TEST, tiny_config, checkpoint, '--out', out), '.pkl')
    assert not out.exists()
    assert_one_line_error(python(TEST, tiny_config, checkpoints['broken']), 'is not a PyTorch checkpoint')
    assert_refused_safely(python(TEST, tiny_config, checkpoints['hostile']), 'refers to code', checkpoints['root'])
    assert_one_line_error(python(TEST, tiny_config, checkpoints['foreign']), 'does not fit the model: ')
    assert_one_line_error(python(TEST, tiny_config, checkpoint, '--out-item', 'metrics'), '--out-item needs --out')
    assert_one_line_error(python(TEST, tiny_config, checkpoint, '--interval', '2'), 'only with --show or --show-dir')
    assert_one_line_error(python(TEST, tiny_config, checkpoint, '--tta'), '--tta: ')


def test_train_flags_of_mmpretrain(tiny_config: Path, tmp_path: Path) -> None:
    """--no-validate, --no-pin-memory and --no-persistent-workers, as mmpretrain's tools/train.py has them."""
    config = write_config(
        tmp_path / 'workers.py',
        tiny_config,
        'train_dataloader = dict(num_workers=1, persistent_workers=True, pin_memory=True)',
    )
    flags = ['--no-validate', '--no-pin-memory', '--no-persistent-workers']
    work_dir = tmp_path / 'run'
    assert_ok(python(TRAIN, config, '--work-dir', work_dir, *flags, '--cfg-options', 'train_cfg.max_epochs=1'))
    log = read_scalar_log(find_scalar_log(work_dir))
    assert log.train and not log.val
    dumped = Config.fromfile(work_dir / 'workers.py')  # the Runner's copy of the config it ran
    assert dumped.val_dataloader is None and dumped.val_cfg is None
    assert dumped.train_dataloader.pin_memory is False and dumped.train_dataloader.persistent_workers is False


def test_test_flags_of_mmpretrain(trained: Path, tiny_config: Path, tmp_path: Path) -> None:
    """--amp, --show(-dir), --interval, --wait-time, --out-item, --no-pin-memory: mmpretrain's tools/test.py flags."""
    checkpoint = trained / 'epoch_2.pth'
    plain = tmp_path / 'plain.pkl'
    assert_ok(python(TEST, tiny_config, checkpoint, '--work-dir', tmp_path / 'w', '--out', plain))
    amp = tmp_path / 'amp.pkl'
    assert_ok(python(TEST, tiny_config, checkpoint, '--work-dir', tmp_path / 'w', '--out', amp, '--amp'))
    plain_scores = torch.stack([p['pred_score'] for p in pickle.loads(plain.read_bytes())])
    amp_scores = torch.stack([p['pred_score'] for p in pickle.loads(amp.read_bytes())])
    assert amp_scores.dtype == torch.bfloat16  # autocast on the CPU
    torch.testing.assert_close(amp_scores.float(), plain_scores, atol=0.05, rtol=0)

    show_dir = tmp_path / 'drawn'
    metrics = tmp_path / 'metrics.json'
    result = python(
        TEST, tiny_config, checkpoint, '--work-dir', tmp_path / 'w', '--show-dir', show_dir, '--interval', 5,
        '--show', '--wait-time', 0.01, '--out', metrics, '--out-item', 'metrics', '--no-pin-memory',
        env={'MPLBACKEND': 'Agg'},  # --show's windows, without a display
    )  # fmt: skip
    assert_ok(result)
    # 6 images, every 5th drawn: class0/val_0.png and class2/val_1.png
    assert sorted(p.name for p in show_dir.iterdir()) == ['val_0.png_0.png', 'val_1.png_0.png']
    top1 = float(re.search(r'Epoch\(test\).*accuracy/top1: ([\d.]+)', result.stdout + result.stderr).group(1))
    assert json.loads(metrics.read_text())['accuracy/top1'] == pytest.approx(top1)


def test_test_time_augmentation_of_the_config(trained: Path, tiny_config: Path, tmp_path: Path) -> None:
    """--tta wraps the model in the config's tta_model and tests on its tta_pipeline: flips, averaged."""
    tta = write_config(
        tmp_path / 'tta.py',
        tiny_config,
        """tta_model = dict(type='AverageClsScoreTTA')
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='RandomFlip', prob=1.0), dict(type='RandomFlip', prob=0.0)], [dict(type='PackInputs')]
    ]),
]
""",
    )
    checkpoint = trained / 'epoch_2.pth'
    load, flip, pack = "dict(type='LoadImageFromFile')", "dict(type='RandomFlip', prob=1.0)", "dict(type='PackInputs')"
    scores = {}
    for name, pipeline, args in (('tta', '', ['--tta']), ('flipped', f'{load}, {flip}, {pack}', []),
                                 ('plain', f'{load}, {pack}', [])):  # fmt: skip
        config = tta
        if pipeline:
            config = write_config(
                tmp_path / f'{name}.py', tta, f'test_dataloader = dict(dataset=dict(pipeline=[{pipeline}]))'
            )
        out = tmp_path / f'{name}.pkl'
        assert_ok(python(TEST, config, checkpoint, '--work-dir', tmp_path / 'w', '--out', out, *args))
        scores[name] = torch.stack([p['pred_score'] for p in pickle.loads(out.read_bytes())])
    assert not torch.allclose(scores['flipped'], scores['plain'])
    torch.testing.assert_close(scores['tta'], (scores['flipped'] + scores['plain']) / 2)


def test_a_label_outside_the_heads_classes_is_one_line_naming_the_file_and_line(
    tiny_config: Path, imagenet_folder: Path, tmp_path: Path
) -> None:
    root = Path(shutil.copytree(imagenet_folder, tmp_path / 'data'))  # 3 classes, 4 training images of each
    annotations = root / 'meta' / 'train.txt'
    lines = annotations.read_text().splitlines(keepends=True)
    lines[6] = lines[6].replace(' 1\n', ' 5\n')
    annotations.write_text(''.join(lines))
    data = f'dict(dataset=dict(data_root={str(root)!r}))'
    config = write_config(
        tmp_path / 'three.py',
        tiny_config,
        'model = dict(head=dict(num_classes=3))\n'
        + ''.join(f'{split}_dataloader = {data}\n' for split in ('train', 'val', 'test')),
    )
    result = python(TRAIN, config, '--work-dir', tmp_path / 'run')
    expected = (
        f'error: train_dataloader.dataset: {annotations} line 7 has label 5, '
        'but model.head.num_classes is 3: labels must be 0 to 2'
    )
    assert_one_line_error(result, expected)
    assert result.stderr.strip() == expected
    assert not list((tmp_path / 'run').glob('*.pth'))
    # The validation and test sets are checked too: a label there would make the accuracy silently wrong.
    (root / 'meta' / 'val.txt').write_text((root / 'meta' / 'val.txt').read_text().replace(' 2\n', ' -1\n', 1))
    annotations.write_text(''.join(lines).replace(' 5\n', ' 1\n'))
    result = python(TRAIN, config, '--work-dir', tmp_path / 'run')
    assert_one_line_error(result, f'val_dataloader.dataset: {root / "meta" / "val.txt"} line 5 has label -1')
    checkpoint = tmp_path / 'weights.pth'
    torch.save({'state_dict': build_model(Config.fromfile(config)).state_dict()}, checkpoint)
    result = python(TEST, config, checkpoint, '--work-dir', tmp_path / 'test')
    assert_one_line_error(result, f'test_dataloader.dataset: {root / "meta" / "val.txt"} line 5 has label -1')


@pytest.fixture(scope='module')
def damaged(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny net's training checkpoint of epoch 2, its weights turned NaN, int64 or fp16."""
    content, _ = read_checkpoint(str(trained / 'epoch_2.pth'))
    root = tmp_path_factory.mktemp('damaged')
    files = {}
    for name, damage in (('nan', lambda t: torch.full_like(t, float('nan'))), ('int64', lambda t: t.long()),
                         ('fp16', lambda t: t.half())):  # fmt: skip
        state_dict = {key: damage(t) if t.is_floating_point() else t for key, t in content['state_dict'].items()}
        files[name] = root / f'{name}.pth'
        torch.save({**content, 'state_dict': state_dict}, files[name])
    return files


def test_damaged_weights_are_refused_by_every_tool_and_half_precision_loads(
    damaged: dict[str, Path], tiny_config: Path, tmp_path: Path
) -> None:
    nan = f'error: checkpoint {damaged["nan"]}: backbone.stem.0.weight holds NaN or infinite values'
    integers = (
        f'error: checkpoint {damaged["int64"]}: backbone.stem.0.weight holds int64 values, where the model has float32'
    )
    for checkpoint, expected in ((damaged['nan'], nan), (damaged['int64'], integers)):
        assert_one_line_error(python(TEST, tiny_config, checkpoint, '--work-dir', tmp_path / 'test'), expected)
        work_dir = tmp_path / 'resume'
        resumed = python(TRAIN, tiny_config, '--work-dir', work_dir, '--resume', checkpoint)
        assert_one_line_error(resumed, expected)
        loaded = python(TRAIN, tiny_config, '--work-dir', work_dir, '--cfg-options', f'load_from={checkpoint}')
        assert_one_line_error(loaded, expected)
        assert not list(work_dir.glob('*.pth'))
    result = python(TEST, tiny_config, damaged['fp16'], '--work-dir', tmp_path / 'test')
    assert_ok(result)
    assert 'accuracy/top1' in result.stdout
