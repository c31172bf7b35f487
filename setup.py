"""Packaging for mmdensenet.

A regular install also places configs/, tools/ and model-index.yml under
``mmdensenet/.mim`` so that ``mim train mmdensenet ...`` can find them.
"""

import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
MIM_FILES = ('configs', 'tools', 'model-index.yml')


def read_version() -> str:
    scope: dict = {}
    exec((ROOT / 'mmdensenet' / 'version.py').read_text(), scope)
    return scope['__version__']


def read_requirements(name: str) -> list[str]:
    """The requirements of ``requirements/<name>``: version ranges, without its pip options (-c, -r)."""
    lines = (ROOT / 'requirements' / name).read_text().splitlines()
    return [line for line in lines if line and not line.startswith(('#', '-'))]


class BuildWithMim(build_py):
    """Builds the package afresh, with the mim files in it.

    The build folder outlives a build (pip builds in the checkout's ``build/``), and setuptools
    only adds to it: a module or config deleted from the checkout would still be installed.
    """

    def run(self) -> None:
        package = Path(self.build_lib) / 'mmdensenet'
        if package.is_dir():
            shutil.rmtree(package)
        super().run()
        target = package / '.mim'
        for name in MIM_FILES:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, target / name)
            elif source.is_file():
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / name)


setup(
    name='mmdensenet',
    version=read_version(),
    description='DenseNet for OpenMMLab 2.0: classification and detection backbones',
    long_description=(ROOT / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.9',
    packages=find_packages(include=['mmdensenet', 'mmdensenet.*']),
    install_requires=read_requirements('runtime.txt'),
    extras_require={'detection': read_requirements('detection.txt')},
    cmdclass={'build_py': BuildWithMim},
    zip_safe=False,
)
