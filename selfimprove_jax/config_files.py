"""`from selfimprove_jax import config_files`: what config files built on others import
(configs/tiny.py loads configs/default.py with it). It lives in base/config_files.py."""

from selfimprove_jax.base.config_files import CONFIG_DIR, load

__all__ = ["CONFIG_DIR", "load"]
