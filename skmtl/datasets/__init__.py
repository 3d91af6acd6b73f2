"""Data sets for multi-task learning: a bundled real one and a synthetic generator."""

from ._census import load_census_income
from ._synthetic import make_multitask_classification

__all__ = ["load_census_income", "make_multitask_classification"]
