"""Only here to name the cffi extension: pyproject.toml has no key for ``cffi_modules``."""

from setuptools import setup

setup(cffi_modules=["native/build_native.py:ffibuilder"])
