"""The package version, importable by every module without importing the package itself."""

from __future__ import annotations

__all__ = ["__version__", "tool_versions"]

__version__ = "0.1.0"


def tool_versions() -> dict[str, str | int]:
    """``{"tool_version", "torch_version", "threads"}``: what every result's provenance records
    (``threads``: torch's intra-op CPU threads when the result was computed; see
    :mod:`landscape.threads`)."""
    import torch

    return {"tool_version": __version__, "torch_version": torch.__version__,
            "threads": torch.get_num_threads()}
