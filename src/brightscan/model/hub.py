"""``brightscan model fetch HUB_ID``: download a published BTSbot 2 model and import it.

Needs the optional ``hub`` extra (``huggingface_hub``), imported only here. The published models
are ``nabeelr/BTSbot-{convnext-pico|maxvit-tiny}-{galaxyzoo|in1k|randinit}[-metadata]``: each a
``train_config.json`` and a ``pytorch_model.bin`` state dict, imported by
:func:`~brightscan.model.importing.import_btsbot2` (``weights_only=True``). Only those files are
downloaded. ``offline=True`` (or ``HF_HUB_OFFLINE=1``) reads the Hugging Face cache only.
"""

from __future__ import annotations

from pathlib import Path

from brightscan.errors import ConfigError, ModelFileError

__all__ = ["fetch_model", "HUB_FILES"]

#: What a BTSbot 2 repository on the Hub holds that brightscan reads.
HUB_FILES = ["train_config.json", "pytorch_model.bin", "model.safetensors"]


def fetch_model(hub_id: str, out: str | Path, *, revision: str | None = None,
                cache_dir: str | Path | None = None, offline: bool = False,
                overwrite: bool = False) -> Path:
    """Download ``hub_id`` (at ``revision``) into the Hub cache and import it into ``out``.

    Raises
    ------
    ConfigError
        When ``huggingface_hub`` is not installed.
    ModelFileError
        When the repository cannot be fetched (or is not in the cache offline), or is not a
        btsbot 2 model.
    """
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    except ImportError:
        raise ConfigError("brightscan model fetch needs huggingface_hub: pip install 'brightscan[hub]'") from None
    from brightscan.model.importing import import_btsbot2

    try:
        snapshot = snapshot_download(hub_id, revision=revision, cache_dir=cache_dir,
                                     allow_patterns=HUB_FILES, local_files_only=offline)
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as exc:
        raise ModelFileError(f"cannot fetch {hub_id!r} from the Hugging Face Hub: {type(exc).__name__}: {exc}") from None
    version = f"{hub_id}@{revision}" if revision else hub_id
    return import_btsbot2(snapshot, out, model_version=version, overwrite=overwrite)
