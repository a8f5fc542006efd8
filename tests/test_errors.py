import pytest

from landscape.errors import LandscapeError, check_float, check_int, check_option


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
