"""Data sets for multi-task learning: a bundled real one and synthetic generators."""

from ._ad_funnel import make_ad_funnel
from ._census import load_census_income
from ._click_watch_time import make_click_watch_time
from ._synthetic import make_multitask_classification
from ._wide import make_wide_multitask_classification

__all__ = [
    "load_census_income",
    "make_ad_funnel",
    "make_click_watch_time",
    "make_multitask_classification",
    "make_wide_multitask_classification",
]
