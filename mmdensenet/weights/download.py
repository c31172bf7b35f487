"""Checkpoints given as http(s) URLs: downloaded once into torch hub's cache, where mmengine keeps them too."""

import sys
from http.client import HTTPException
from pathlib import Path
from urllib.parse import urlparse

import torch
from mmengine.dist import get_dist_info
from mmengine.logging import print_log

from .checkpoint_io import CheckpointError


def is_url(path: str) -> bool:
    """Whether ``path`` is an http(s) URL."""
    return urlparse(path).scheme in ('http', 'https')


def cache_path(url: str) -> Path:
    """Where mmengine's http loader caches ``url``: torch hub's ``checkpoints`` folder, under the URL's file name."""
    return Path(torch.hub.get_dir()) / 'checkpoints' / Path(urlparse(url).path).name


def _download(url: str, path: Path) -> None:
    if path.is_file():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    print_log(f'downloading {url} to {path}', logger='current')
    try:  # torch writes a temporary file, renamed into place when complete and removed otherwise
        torch.hub.download_url_to_file(url, str(path), progress=sys.stderr.isatty())
    except (OSError, ValueError, HTTPException) as error:  # URLError and HTTPError are OSErrors
        reason = getattr(error, 'reason', None) or error
        raise CheckpointError(
            f'cannot download {url} ({reason}); offline, give the path of a local copy as the checkpoint, '
            f'or place the file at {path}'
        ) from None


def cached_download(url: str) -> Path:
    """The local copy of ``url`` in mmengine's download cache, downloaded first if it is not there.

    As in mmengine, rank 0 downloads while the other processes wait; a machine without rank 0
    downloads into its own cache after it.
    """
    path = cache_path(url)
    rank, world_size = get_dist_info()
    if rank == 0:
        _download(url, path)
    if world_size > 1:
        torch.distributed.barrier()
        _download(url, path)
    return path
