"""Config loading: YAML (safe, no duplicate keys) + includes + `key=value` overrides -> typed sections.

Usage:
    cfg = load_config("configs/ctg/diffusion-identity.yaml", ["data.stride_s=30"])
    cfg.data.window, cfg.raw (the resolved plain dict), cfg.yaml() (text saved beside every output)
"""
from .loader import Config, load_config, config_from_text
from .typed import from_dict, to_dict, limits

__all__ = ["Config", "load_config", "config_from_text", "from_dict", "to_dict", "limits"]
