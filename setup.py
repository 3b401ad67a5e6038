"""Kept for `pip install -e .` on old pips and setuptools; metadata lives in pyproject.toml."""
from setuptools import setup

setup()
