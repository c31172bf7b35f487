"""Packaging: `pip install .` keeps a user's supported stack; tools/install.sh installs the tested one.

pip is asked for its plan (`pip install --dry-run --report`) offline and free of this machine's pip
configuration: no index, and as the only source a folder of stand-in wheels of the tested stack
(metadata only), so that pip would plan to install them wherever the requirements asked for them. A
user's environment is this one with stand-in metadata of other versions first on the path: installed
packages are their metadata to pip.

What a build ships is checked on real wheels, built as `pip install .` builds them.
"""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO / 'requirements'
# Installed versions that a user may have: CUDA builds carry a local version label.
CUDA_STACK = {'torch': '2.6.0+cu124', 'torchvision': '0.21.0+cu124', 'mmengine': '0.10.4', 'mmcv': '2.1.0'}


def requirements(name: str) -> list[Requirement]:
    lines = (REQUIREMENTS / name).read_text().splitlines()
    return [Requirement(line) for line in lines if line and not line.startswith(('#', '-'))]


TESTED = {req.name: str(req.specifier).removeprefix('==') for req in requirements('tested.txt')}


def metadata(name: str, version: str) -> str:
    return f'Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n'


def write_installed(site: Path, versions: dict[str, str]) -> Path:
    """Installed-package metadata of ``versions`` in a folder that goes first on the path."""
    for name, version in versions.items():
        info = site / f'{name}-{version}.dist-info'
        info.mkdir(parents=True)
        (info / 'METADATA').write_text(metadata(name, version))
    return site


def write_wheels(folder: Path, versions: dict[str, str]) -> Path:
    """Wheels holding nothing but their metadata, for pip to plan with."""
    folder.mkdir(parents=True)
    for name, version in versions.items():
        info = f'{name}-{version}.dist-info'
        with zipfile.ZipFile(folder / f'{name}-{version}-py3-none-any.whl', 'w') as wheel:
            wheel.writestr(f'{info}/METADATA', metadata(name, version))
            wheel.writestr(f'{info}/WHEEL', 'Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n')
            wheel.writestr(f'{info}/RECORD', '')
    return folder


def offline_pip_env(**variables: str) -> dict[str, str]:
    """This environment without pip's configuration (no index), with ``variables`` added."""
    env = {key: value for key, value in os.environ.items() if not key.startswith('PIP_')}
    return {**env, 'PIP_CONFIG_FILE': os.devnull, **variables}


def install_plan(tmp_path: Path, installed: dict[str, str], *targets: str) -> dict[str, str]:
    """What `pip install TARGETS` would install into this environment with ``installed`` in front."""
    site = write_installed(tmp_path / 'site', installed)
    wheels = write_wheels(tmp_path / 'wheels', TESTED)
    report = tmp_path / 'report.json'
    env = offline_pip_env(PYTHONPATH=str(site))
    # No build isolation: an isolated build would need setuptools from an index.
    command = [sys.executable, '-m', 'pip', 'install', '--dry-run', '--quiet', '--report', str(report)]
    command += ['--no-index', '--find-links', str(wheels), '--no-build-isolation', '--no-input', *targets]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    plan = json.loads(report.read_text())['install']
    return {canonicalize_name(item['metadata']['name']): item['metadata']['version'] for item in plan}


@pytest.mark.parametrize('extra', ['', '[detection]'])
@pytest.mark.parametrize('installed', [{}, CUDA_STACK], ids=['tested stack', 'CUDA torch 2.6 stack'])
def test_pip_install_keeps_a_supported_stack(tmp_path: Path, installed: dict[str, str], extra: str) -> None:
    plan = install_plan(tmp_path, installed, f'{REPO}{extra}')
    assert list(plan) == ['mmdensenet'], f'pip install .{extra} would also install {plan}'


def test_pip_install_replaces_an_unsupported_torch(tmp_path: Path) -> None:
    plan = install_plan(tmp_path, {**CUDA_STACK, 'torch': '2.5.1+cu124'}, str(REPO))
    assert set(plan) == {'mmdensenet', 'torch'} and plan['torch'] == TESTED['torch']


def test_install_sh_installs_the_tested_stack(tmp_path: Path) -> None:
    """install.sh's `pip install -r requirements/runtime.txt` follows the pins of tested.txt."""
    plan = install_plan(tmp_path, CUDA_STACK, '-r', str(REQUIREMENTS / 'runtime.txt'))
    assert plan == {name: TESTED[name] for name in ('torch', 'torchvision', 'mmengine')}


def test_requirements_are_ranges_that_hold_the_tested_versions() -> None:
    supported = requirements('runtime.txt') + requirements('detection.txt')
    assert not [str(req) for req in supported if any(spec.operator in ('==', '===') for spec in req.specifier)]
    assert not {req.name for req in supported} & {'mmcv', 'mmcv-lite'}  # see runtime.txt
    ranges = {req.name: req.specifier for req in supported}
    for name, version in TESTED.items():
        assert name in ranges and ranges[name].contains(version), f'{name} {version} is outside {ranges.get(name)}'


def test_the_oldest_stack_sits_on_every_floor() -> None:
    """requirements/oldest.txt pins each dependency that runtime.txt bounds below at that bound."""
    oldest = {req.name: req.specifier for req in requirements('oldest.txt')}
    for req in requirements('runtime.txt'):
        floors = [Version(spec.version) for spec in req.specifier if spec.operator == '>=']
        if floors:
            pins = [Version(spec.version) for spec in oldest.get(req.name, []) if spec.operator == '==']
            assert pins == floors, f'oldest.txt pins {req.name} at {pins}, its floor is {floors}'


def wheel_files(source: Path, folder: Path) -> set[str]:
    """The files of a wheel of ``source``, built as `pip install` builds one: in ``source``'s own build/."""
    command = [sys.executable, '-m', 'pip', 'wheel', '--quiet', '--no-deps', '--no-build-isolation', '--no-index']
    result = subprocess.run([*command, '--wheel-dir', str(folder), str(source)], capture_output=True, text=True,
                            env=offline_pip_env(), timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = folder.glob('*.whl')
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_a_rebuild_ships_what_the_checkout_holds_now(tmp_path: Path) -> None:
    """A config or module deleted from the checkout is gone from the next build, though build/ stays."""
    source = tmp_path / 'mmdensenet'
    ignored = shutil.ignore_patterns('.git', 'build', '*.egg-info', '__pycache__', 'data', 'work_dirs')
    shutil.copytree(REPO, source, ignore=ignored)
    first = wheel_files(source, tmp_path / 'first')
    deleted = {'configs/densenet169_4xb256_in1k.py': 'mmdensenet/.mim/configs/densenet169_4xb256_in1k.py',
               'mmdensenet/analysis/curves.py': 'mmdensenet/analysis/curves.py'}  # fmt: skip
    assert set(deleted.values()) <= first
    for name in deleted:
        (source / name).unlink()
    second = wheel_files(source, tmp_path / 'second')
    assert (source / 'build' / 'lib' / 'mmdensenet').is_dir()  # the second build ran over the first one's folder
    assert second == first - set(deleted.values())
