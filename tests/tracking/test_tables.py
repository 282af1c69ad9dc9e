"""The summary's cells: a figure measured over queries shows ± its 95% half-width."""

import math

from sso_exp.tracking.tables import summary_table


def test_a_cell_with_a_standard_error_shows_its_95_percent_interval():
    columns = (("onpol", "onpolicy/chosen", "{:.3f}"), ("kept", "pairs/kept", "{:d}"))
    rows = [
        {"onpolicy/chosen": -1.5, "onpolicy/chosen_se": 0.1, "pairs/kept": 4},
        {"onpolicy/chosen": -1.25, "onpolicy/chosen_se": math.nan},  # one query: no interval
    ]
    lines = summary_table(rows, columns).splitlines()
    assert lines[2] == "| -1.500 ± 0.196 | 4 |"
    assert lines[3] == "| -1.250 | - |"
