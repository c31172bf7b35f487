"""``init_cfg=dict(type='Pretrained', ...)`` on mmdensenet.DenseNet, from every layout its weights come in.

The checkpoints are written by torchvision's and mmpretrain's own models (random weights, BatchNorm
statistics far from their defaults). URLs and ``torchvision://`` names are served from the download
cache, where the tests place the files under the URL's name, so the real code path runs offline.
"""

import re
import shutil
import threading
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
import torchvision
from torch import Tensor, nn

from mmdensenet.models import DenseNet
from mmdensenet.weights import CheckpointError, from_torchvision, load_pretrained
from tests.weight_helpers import (
    TORCHVISION_FILES,
    RunsCommand,
    assert_same_logits,
    mmpretrain_classifier,
    published_layout,
    randomize_batchnorm,
    table_checkpoint_urls,
    use_download_cache,
)

TINY = dict(growth_rate=8, depths=(1, 2, 3, 4), init_channels=16)
IMAGES = (2, 3, 64, 64)

# Each writer saves a checkpoint into a folder and returns its path and the backbone's expected last tap.
Writer = Callable[[Path], tuple[Path, Callable[[Tensor], Tensor]]]


def torchvision_densenet(growth_rate: int = 8, block_config: tuple = (1, 2, 3, 4)) -> nn.Module:
    model = torchvision.models.DenseNet(growth_rate=growth_rate, block_config=block_config, num_init_features=16)
    return randomize_batchnorm(model)


def torchvision_features(model: nn.Module) -> Callable[[Tensor], Tensor]:
    """The last tap of our backbone in torchvision's terms: relu(norm5(...)), as its classifier sees it."""
    return lambda images: torch.relu(model.features(images))


def mmpretrain_features(model: nn.Module) -> Callable[[Tensor], Tensor]:
    return lambda images: model.backbone(images)[-1]


def write_torchvision(folder: Path) -> tuple[Path, Callable]:
    model = torchvision_densenet()
    torch.save(model.state_dict(), folder / 'tv.pth')
    return folder / 'tv.pth', torchvision_features(model)


def write_torchvision_published(folder: Path) -> tuple[Path, Callable]:
    model = torchvision_densenet()
    torch.save(published_layout(model.state_dict()), folder / 'tv_published.pth')
    return folder / 'tv_published.pth', torchvision_features(model)


def write_torchvision_data_parallel(folder: Path) -> tuple[Path, Callable]:
    model = torchvision_densenet()
    torch.save({'model': nn.DataParallel(model).state_dict(), 'epoch': 90}, folder / 'tv_dp.pth')
    return folder / 'tv_dp.pth', torchvision_features(model)


def write_mmpretrain(folder: Path) -> tuple[Path, Callable]:
    model = mmpretrain_classifier(TINY, num_classes=10)
    torch.save({'meta': {'mmpretrain_version': '1.2.0'}, 'state_dict': model.state_dict()}, folder / 'mmpretrain.pth')
    return folder / 'mmpretrain.pth', mmpretrain_features(model)


def write_mmpretrain_without_batches_tracked(folder: Path) -> tuple[Path, Callable]:
    model = mmpretrain_classifier(TINY, num_classes=10)
    state_dict = {key: value for key, value in model.state_dict().items() if 'num_batches' not in key}
    torch.save({'state_dict': state_dict}, folder / 'mmpretrain_old.pth')
    return folder / 'mmpretrain_old.pth', mmpretrain_features(model)


def write_backbone(folder: Path) -> tuple[Path, Callable]:
    model = randomize_batchnorm(DenseNet(TINY))
    torch.save(model.state_dict(), folder / 'backbone.pth')
    return folder / 'backbone.pth', lambda images: model(images)[-1]


LAYOUTS: dict[str, tuple[Writer, str]] = {
    'torchvision': (write_torchvision, 'torchvision DenseNet'),
    'torchvision published': (write_torchvision_published, 'torchvision DenseNet with the published names'),
    'torchvision DataParallel': (write_torchvision_data_parallel, 'torchvision DenseNet'),
    'mmpretrain': (write_mmpretrain, 'classifier or detector (backbone.*)'),
    'mmpretrain without num_batches_tracked': (write_mmpretrain_without_batches_tracked, 'classifier or detector'),
    'backbone': (write_backbone, 'backbone (stem.*, stages.*, transitions.*)'),
}


def pretrained_backbone(checkpoint: object, arch=TINY, **pretrained) -> DenseNet:
    """Our backbone built with a Pretrained init_cfg and initialised as a runner does, in eval mode."""
    backbone = DenseNet(
        arch, out_indices=(0, 1, 2, 3), init_cfg=dict(type='Pretrained', checkpoint=str(checkpoint), **pretrained)
    )
    backbone.init_weights()
    return backbone.eval()


def assert_same_features(backbone: DenseNet, expected: Callable[[Tensor], Tensor]) -> None:
    images = torch.randn(IMAGES)
    with torch.no_grad():
        theirs = expected(images)
        ours = backbone(images)[-1]
    assert_same_logits(ours, theirs)


def assert_refused(path: Path, message: str, **pretrained) -> None:
    """Loading ``path`` raises a CheckpointError: the path, then ``message``."""
    with pytest.raises(CheckpointError, match=re.escape(f'{path} {message}')):
        pretrained_backbone(path, **pretrained)


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The folder where mmengine's http loader caches downloads, in a fresh TORCH_HOME; emptied afterwards."""
    cache = use_download_cache(monkeypatch, tmp_path)
    yield cache
    shutil.rmtree(cache)  # the real-size files need not outlive the test


@pytest.mark.parametrize('prefix', [None, 'backbone.', 'backbone'], ids=['no prefix', 'prefix', 'prefix without dot'])
@pytest.mark.parametrize('layout', LAYOUTS)
def test_every_layout_loads_with_or_without_prefix(layout: str, prefix: str, tmp_path: Path) -> None:
    write, layout_name = LAYOUTS[layout]
    path, expected = write(tmp_path)

    backbone = pretrained_backbone(path, **({'prefix': prefix} if prefix else {}))

    assert_same_features(backbone, expected)
    # Files saved before BatchNorm counted batches give 0, which BatchNorm assumes for them.
    counts = {value.item() for key, value in backbone.state_dict().items() if key.endswith('num_batches_tracked')}
    assert counts == ({0} if 'published' in layout or 'without' in layout else {7})
    assert load_pretrained(DenseNet(TINY), str(path), prefix).startswith(layout_name)


def test_converter_output_loads_with_or_without_prefix(tmp_path: Path) -> None:
    torchvision_model = randomize_batchnorm(torchvision.models.densenet121())
    torch.save(published_layout(torchvision_model.state_dict()), tmp_path / TORCHVISION_FILES['121'])
    converted = tmp_path / 'densenet121_mm.pth'
    from_torchvision(str(tmp_path / TORCHVISION_FILES['121']), str(converted))

    for pretrained in ({}, {'prefix': 'backbone.'}):
        backbone = pretrained_backbone(converted, arch='121', **pretrained)
        assert_same_features(backbone, torchvision_features(torchvision_model))
    layout = load_pretrained(DenseNet('121'), str(converted))
    assert layout == f"mmdensenet's conversion of {TORCHVISION_FILES['121']}"


@pytest.mark.parametrize('arch', TORCHVISION_FILES)
def test_torchvision_names_load_the_published_files(arch: str, hub_cache: Path) -> None:
    torchvision_model = randomize_batchnorm(torchvision.models.get_model(f'densenet{arch}'))
    torch.save(published_layout(torchvision_model.state_dict()), hub_cache / TORCHVISION_FILES[arch])

    backbone = pretrained_backbone(f'torchvision://densenet{arch}', arch=arch, prefix='backbone.')

    assert_same_features(backbone, torchvision_features(torchvision_model))
    assert sorted(path.name for path in hub_cache.iterdir()) == [TORCHVISION_FILES[arch]]  # nothing else fetched


@pytest.mark.parametrize('arch', TORCHVISION_FILES)
def test_table_checkpoints_load_from_their_urls(arch: str, hub_cache: Path) -> None:
    url = table_checkpoint_urls()[arch]
    model = mmpretrain_classifier(arch)
    torch.save({'meta': {'mmcls_version': '0.23.0'}, 'state_dict': model.state_dict()}, hub_cache / url.split('/')[-1])

    backbone = pretrained_backbone(url, arch=arch, prefix='backbone.')

    assert_same_features(backbone, mmpretrain_features(model))


def test_a_file_that_is_not_densenet_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / 'resnet18.pth'
    torch.save(torchvision.models.resnet18().state_dict(), path)
    message = (
        "(unrecognised, with keys such as 'conv1.weight', 'bn1.weight', 'bn1.bias'): it holds none of the "
        'tensors of the backbone (dense blocks of 1-2-3-4 layers), such as stem.0.weight, stem.1.weight, stem.1.bias'
    )
    assert_refused(path, message, prefix='backbone.')


def test_missing_tensors_are_named_as_the_file_names_them(tmp_path: Path) -> None:
    state_dict = published_layout(torchvision_densenet().state_dict())
    for key in ('features.norm0.weight', 'features.denseblock2.denselayer2.conv.2.weight', 'features.norm5.bias'):
        del state_dict[key]
    path = tmp_path / 'damaged.pth'
    torch.save(state_dict, path)
    message = (
        '(torchvision DenseNet with the published names (norm.1, conv.1)) does not fit the backbone '
        '(dense blocks of 1-2-3-4 layers): 3 tensors missing (features.norm0.weight, '
        'features.denseblock2.denselayer2.conv2.weight, features.norm5.bias)'
    )
    assert_refused(path, message)

    backbone = {f'backbone.{key}': value for key, value in DenseNet(TINY).state_dict().items()}
    del backbone['backbone.stages.3.block.3.conv2.weight']
    torch.save({'state_dict': backbone}, path)
    message = (
        '(classifier or detector (backbone.*)) does not fit the backbone (dense blocks of 1-2-3-4 layers): '
        '1 tensor missing (backbone.stages.3.block.3.conv2.weight)'
    )
    assert_refused(path, message, prefix='backbone.')


def test_a_wrong_arch_is_refused(tmp_path: Path) -> None:
    path = tmp_path / TORCHVISION_FILES['169']
    torch.save(published_layout(torchvision.models.densenet169().state_dict()), path)
    message = (
        '(torchvision DenseNet with the published names (norm.1, conv.1)): it holds DenseNet-169, dense '
        'blocks of 6-12-32-32 layers, but the backbone is DenseNet-121, dense blocks of 6-12-24-16 layers'
    )
    assert_refused(path, message, arch='121', prefix='backbone.')


def test_a_wrong_shape_is_refused(tmp_path: Path) -> None:
    path = tmp_path / 'growth12.pth'
    torch.save(torchvision_densenet(growth_rate=12).state_dict(), path)
    message = (
        '(torchvision DenseNet) does not fit the backbone (dense blocks of 1-2-3-4 layers): '
        '115 tensors of another shape (e.g. features.denseblock1.denselayer1.conv1.weight: (48, 16, 1, 1) in the file, '
        '(32, 16, 1, 1) in the backbone (dense blocks of 1-2-3-4 layers))'
    )
    assert_refused(path, message)


def test_damaged_values_are_refused_by_their_name_in_the_file(tmp_path: Path) -> None:
    state_dict = torchvision_densenet().state_dict()
    path = tmp_path / 'damaged.pth'
    torch.save({**state_dict, 'features.norm0.running_var': torch.full((16,), float('inf'))}, path)
    message = f'{path} (torchvision DenseNet): features.norm0.running_var holds NaN or infinite values'
    with pytest.raises(CheckpointError, match=f'^{re.escape(message)}$'):
        pretrained_backbone(path)
    torch.save({**state_dict, 'features.conv0.weight': state_dict['features.conv0.weight'].long()}, path)
    with pytest.raises(CheckpointError, match=re.escape('features.conv0.weight holds int64 values, where the model')):
        pretrained_backbone(path)
    torch.save(
        {key: tensor.half() if tensor.is_floating_point() else tensor for key, tensor in state_dict.items()}, path
    )
    assert pretrained_backbone(path).stem[0].weight.dtype == torch.float32


@pytest.fixture
def file_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path, list[str]]]:
    """An HTTP server on this machine serving a folder: its URL, the folder and the paths requested."""
    monkeypatch.setenv('no_proxy', '127.0.0.1')  # urllib would send the request to a configured proxy
    folder = tmp_path / 'served'
    folder.mkdir()
    requests: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, directory=str(folder), **kwargs)

        def do_GET(self) -> None:
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{server.server_port}', folder, requests
    server.shutdown()
    thread.join()


def test_a_url_is_downloaded_once_into_the_cache(file_server: tuple, hub_cache: Path) -> None:
    url, served, requests = file_server
    path, expected = write_torchvision_published(served)

    for _ in range(2):
        assert_same_features(pretrained_backbone(f'{url}/{path.name}', prefix='backbone.'), expected)

    assert requests == [f'/{path.name}']
    assert (hub_cache / path.name).read_bytes() == path.read_bytes()


def test_code_in_a_downloaded_checkpoint_never_runs(hub_cache: Path, tmp_path: Path) -> None:
    url = table_checkpoint_urls()['121']
    marker = tmp_path / 'code_ran'
    cached = hub_cache / url.split('/')[-1]
    torch.save({'state_dict': {}, 'payload': RunsCommand(f'touch {marker}')}, cached)
    with pytest.raises(CheckpointError, match=rf'refusing {re.escape(str(cached))}: it refers to code'):
        pretrained_backbone(url, arch='121')
    assert not marker.exists()


@pytest.mark.parametrize(
    ('checkpoint', 'message'),
    [
        (
            'http://127.0.0.1:9/densenet121.pth',
            r'cannot download http://127\.0\.0\.1:9/densenet121\.pth \(.*\); offline',
        ),
        (
            'torchvision://densenet122',
            r'torchvision://densenet122 names no torchvision weights; DenseNet ones: .*torchvision://densenet121',
        ),
        ('s3://bucket/densenet121.pth', r'read from a local file, an http\(s\) URL or torchvision://<name>'),
        ('absent.pth', 'cannot read absent.pth: No such file'),
    ],
    ids=['unreachable URL', 'unknown torchvision name', 'other scheme', 'missing file'],
)
def test_unreachable_checkpoints_raise(checkpoint: str, message: str, hub_cache: Path) -> None:
    with pytest.raises(CheckpointError, match=message):
        pretrained_backbone(checkpoint)
    assert not list(hub_cache.iterdir())


def test_pretrained_comes_after_the_other_initialisers(tmp_path: Path) -> None:
    path, expected = write_torchvision(tmp_path)
    init_cfg = [
        dict(type='Pretrained', checkpoint=str(path)),
        dict(type='Constant', layer=['_BatchNorm'], val=2, bias=0),
    ]
    backbone = DenseNet(TINY, init_cfg=init_cfg)
    backbone.init_weights()
    assert_same_features(backbone.eval(), expected)
    assert backbone.init_cfg == init_cfg
