import pytest

from landscape.errors import (
    INT64_MAX,
    LandscapeError,
    check_float,
    check_int,
    check_option,
    parse_float,
    parse_int,
)


def test_check_option():
    assert check_option("norm", "filter", ["filter", "layer"]) == "filter"
    with pytest.raises(LandscapeError, match=r"The 'norm' parameter must be one of .*Got 'x'"):
        check_option("norm", "x", ["filter", "layer"])


def test_check_int():
    assert check_int("n", 3, 1) == 3
    assert check_int("n", 3.0, 1) == 3
    for bad in (0, 1.5, "3", True, float("nan")):
        with pytest.raises(LandscapeError, match="The 'n' parameter must be an int in"):
            check_int("n", bad, 1)


def test_check_float():
    assert check_float("tol", 0.5, 0.0, 1.0) == 0.5
    with pytest.raises(LandscapeError, match=r"in \(0.0, inf\)"):
        check_float("tol", 0.0, 0.0, closed="neither")
    with pytest.raises(LandscapeError):
        check_float("tol", float("inf"))


def test_parse_int_refuses_what_int64_cannot_hold():
    assert parse_int("n", " 7 ", 1) == 7
    assert parse_int("n", str(INT64_MAX)) == INT64_MAX
    for bad in ("99999999999999999999", "1.5", "1e3", "x", ""):
        with pytest.raises(LandscapeError, match="The 'n' parameter must be an int in"):
            parse_int("n", bad, 1)


def test_parse_float_refuses_non_finite_numbers():
    assert parse_float("lr", "1e-3", 0.0, closed="neither") == 1e-3
    for bad in ("nan", "inf", "-inf", "1e400", "abc"):
        with pytest.raises(LandscapeError, match="The 'lr' parameter must be a float"):
            parse_float("lr", bad, 0.0, closed="neither")


def test_check_mask_names_both_parameters():
    import numpy as np

    from landscape.errors import check_mask

    m = check_mask("done", [[1, 0], [0, 1]], "values", (2, 2))
    assert m.dtype == bool and m.tolist() == [[True, False], [False, True]]
    with pytest.raises(LandscapeError, match=r"The 'done' parameter must have the shape of "
                                             r"ratio \(3, 3\)\. Got \(2, 2\) instead\."):
        check_mask("done", np.ones((2, 2)), "ratio", (3, 3))
