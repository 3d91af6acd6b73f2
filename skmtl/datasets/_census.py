"""Loader for the bundled UCI Census-Income (KDD) test split."""

from pathlib import Path

import pandas as pd
from sklearn.utils import Bunch

__all__ = ["load_census_income"]

_DATA_FILE = Path(__file__).parent / "data" / "census-income.test.gz"

# The 42 columns of the raw file, in order, as snake_case versions of UCI's names.
_COLUMNS = [
    "age",
    "class_of_worker",
    "detailed_industry_recode",
    "detailed_occupation_recode",
    "education",
    "wage_per_hour",
    "enroll_in_edu_inst_last_wk",
    "marital_stat",
    "major_industry_code",
    "major_occupation_code",
    "race",
    "hispanic_origin",
    "sex",
    "member_of_a_labor_union",
    "reason_for_unemployment",
    "full_or_part_time_employment_stat",
    "capital_gains",
    "capital_losses",
    "dividends_from_stocks",
    "tax_filer_stat",
    "region_of_previous_residence",
    "state_of_previous_residence",
    "detailed_household_and_family_stat",
    "detailed_household_summary_in_household",
    "instance_weight",
    "migration_code_change_in_msa",
    "migration_code_change_in_reg",
    "migration_code_move_within_reg",
    "live_in_this_house_1_year_ago",
    "migration_prev_res_in_sunbelt",
    "num_persons_worked_for_employer",
    "family_members_under_18",
    "country_of_birth_father",
    "country_of_birth_mother",
    "country_of_birth_self",
    "citizenship",
    "own_business_or_self_employed",
    "fill_inc_questionnaire_for_veterans_admin",
    "veterans_benefits",
    "weeks_worked_in_year",
    "year",
    "income",
]

# Genuine quantities: kept numeric.
_NUMERIC_COLUMNS = [
    "age",
    "wage_per_hour",
    "capital_gains",
    "capital_losses",
    "dividends_from_stocks",
    "instance_weight",
    "num_persons_worked_for_employer",
    "weeks_worked_in_year",
]

# Categories stored as integer codes in the file: read as integers, then made categorical.
_CODED_CATEGORICAL_COLUMNS = [
    "detailed_industry_recode",
    "detailed_occupation_recode",
    "own_business_or_self_employed",
    "veterans_benefits",
    "year",
]

# Columns that are not input features: the two that define targets (as in Ma et al., 2018),
# the instance weight (a sampling weight, not a feature) and the raw income label.
_EXCLUDED_FROM_FEATURES = ["education", "marital_stat", "instance_weight", "income"]

_TARGET_NAMES = ["income_50k", "never_married"]

DESCR = """\
Census-Income (KDD) data set, test split
========================================

99,762 records from the 1994 and 1995 Current Population Surveys of the U.S. Census
Bureau, as published by the UCI Machine Learning Repository ("Census-Income (KDD)",
licence CC BY 4.0). This is the test half of UCI's split, bundled with skmtl.

It is the real-data benchmark of the MMoE paper (Ma et al., "Modeling Task
Relationships in Multi-task Learning with Multi-gate Mixture-of-Experts", KDD 2018),
whose first task group is provided here as two binary targets:

- ``income_50k``: 1 when the income column is "50000+." (base rate 6.20 %);
- ``never_married``: 1 when the marital status is "Never married" (base rate 43.25 %).

The features are the remaining 38 columns without education and marital status
(which define or leak the paper's targets) and without the instance weight, which UCI
says should not be used by classifiers; it is returned separately as
``sample_weight``. Seven columns are numeric (age, wage per hour, capital gains,
capital losses, dividends from stocks, number of persons worked for employer, weeks
worked in year); all the others, including the integer-coded industry, occupation,
self-employment, veterans-benefits and year columns, have pandas ``category`` dtype,
with unknown values ("?") as missing.
"""


def _read_raw():
    """Read the bundled file into a DataFrame with clean dtypes.

    Returns
    -------
    frame : pandas.DataFrame of shape (99762, 42)
        All columns of the file. Numeric columns are int64 or float64; every other
        column has ``category`` dtype, with ``"?"`` read as missing and surrounding
        whitespace removed from string categories.
    """
    string_columns = [
        name
        for name in _COLUMNS
        if name not in _NUMERIC_COLUMNS and name not in _CODED_CATEGORICAL_COLUMNS
    ]
    frame = pd.read_csv(
        _DATA_FILE,
        header=None,
        names=_COLUMNS,
        skipinitialspace=True,
        na_values=["?"],
        keep_default_na=False,
        dtype={name: "category" for name in string_columns},
    )
    for name in string_columns:
        frame[name] = _strip_categories(frame[name])
    for name in _CODED_CATEGORICAL_COLUMNS:
        frame[name] = frame[name].astype("category")
    return frame


def _strip_categories(column):
    """Remove trailing whitespace from the categories of a categorical column.

    A few values in the file carry a trailing space (e.g. ``"Handlers equip cleaners
    etc "``); stripping the categories, not the values, keeps this cheap.

    Parameters
    ----------
    column : pandas.Series of category dtype
        Column with string categories.

    Returns
    -------
    column : pandas.Series of category dtype
        The same column with stripped category labels.
    """
    categories = column.cat.categories
    stripped = categories.str.strip()
    if stripped.equals(categories):
        return column
    return column.cat.rename_categories(stripped)


def _make_targets(frame):
    """Build the two binary targets of the MMoE paper's first task group.

    Parameters
    ----------
    frame : pandas.DataFrame
        Output of :func:`_read_raw`.

    Returns
    -------
    target : pandas.DataFrame of shape (n_samples, 2)
        Integer (int64) columns ``income_50k`` and ``never_married``.
    """
    income_50k = (frame["income"] == "50000+.").astype("int64")
    never_married = (frame["marital_stat"] == "Never married").astype("int64")
    return pd.DataFrame({"income_50k": income_50k, "never_married": never_married})


def load_census_income(*, return_X_y=False, as_frame=True):
    """Load the Census-Income (KDD) test split as a two-task classification problem.

    The bundled file is the test half (99,762 rows) of the UCI "Census-Income (KDD)"
    data set, used by Ma et al. (KDD 2018) to evaluate MMoE. The two targets are the
    paper's first task group: income above 50,000 USD and never married.

    =================   =====================================
    Samples             99,762
    Features            38 (7 numeric, 31 categorical)
    Targets             2 binary (base rates 6.20 %, 43.25 %)
    =================   =====================================

    Parameters
    ----------
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.
    as_frame : bool, default=True
        Must be True: the features mix numeric and categorical (string) columns, which
        only a DataFrame with ``category`` dtypes represents faithfully. The parameter
        exists for symmetry with scikit-learn's loaders; False raises ValueError.

    Returns
    -------
    data : sklearn.utils.Bunch
        Returned when ``return_X_y`` is False, with attributes:

        data : pandas.DataFrame of shape (99762, 38)
            Input features. Numeric columns (``age``, ``wage_per_hour``,
            ``capital_gains``, ``capital_losses``, ``dividends_from_stocks``,
            ``num_persons_worked_for_employer``, ``weeks_worked_in_year``) are int64;
            all others have ``category`` dtype, unknown values being missing.
        target : pandas.DataFrame of shape (99762, 2)
            Int64 columns ``income_50k`` and ``never_married``.
        sample_weight : pandas.Series of shape (99762,)
            The float ``instance_weight`` column (CPS population weights). It is not
            a feature; pass it as a sample weight if you want population estimates.
        frame : pandas.DataFrame of shape (99762, 44)
            All 42 original columns (including ``education``, ``marital_stat``,
            ``instance_weight`` and ``income``, with the same dtype rules) followed by
            the two target columns. Useful to build other tasks, e.g. the paper's
            second group (education at least college).
        feature_names : list of str
            Column names of ``data``.
        target_names : list of str
            Column names of ``target``.
        DESCR : str
            Description of the data set.

    (data, target) : tuple
        Returned when ``return_X_y`` is True: the two DataFrames described above.

    Raises
    ------
    ValueError
        If ``as_frame`` is False.

    Notes
    -----
    Each call reads the file again and returns new objects, so modifying the result
    never affects later calls.

    Source: UCI Machine Learning Repository, "Census-Income (KDD)", U.S. Census Bureau
    (1994 and 1995 Current Population Surveys), licensed CC BY 4.0.

    References
    ----------
    .. [1] J. Ma, Z. Zhao, X. Yi, J. Chen, L. Hong and E. H. Chi, "Modeling Task
       Relationships in Multi-task Learning with Multi-gate Mixture-of-Experts",
       KDD 2018.

    Examples
    --------
    >>> from skmtl.datasets import load_census_income
    >>> X, y = load_census_income(return_X_y=True)
    >>> X.shape, y.shape
    ((99762, 38), (99762, 2))
    >>> y.mean().round(4).tolist()
    [0.062, 0.4325]
    """
    if not as_frame:
        raise ValueError(
            "load_census_income only supports as_frame=True: the features mix numeric "
            "and categorical columns, which need a pandas DataFrame."
        )
    frame = _read_raw()
    target = _make_targets(frame)
    feature_names = [name for name in _COLUMNS if name not in _EXCLUDED_FROM_FEATURES]
    data = frame[feature_names].copy()
    if return_X_y:
        return data, target
    sample_weight = frame["instance_weight"].astype("float64")
    return Bunch(
        data=data,
        target=target,
        sample_weight=sample_weight,
        frame=pd.concat([frame, target], axis=1),
        feature_names=feature_names,
        target_names=list(_TARGET_NAMES),
        DESCR=DESCR,
    )
