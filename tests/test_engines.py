"""The SimPy engine and the cohort engine give the same per-patient results.

Both call the same kernel functions (one on floats, one on arrays) with the same random
streams, so every patient's event sequence, lab values and outcomes must agree. Floats
may differ in the last bits (math.exp vs numpy.exp), hence rtol 1e-9.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import scenario_files

from simulator.engines import cohort, des
from simulator.kernel import course
from simulator.scenario import load_scenario


@pytest.mark.parametrize("path", scenario_files(), ids=lambda p: p.stem)
def test_engines_agree_patient_by_patient(path):
    scn = load_scenario(path)
    plan = course.make_plan(scn)
    ids = np.arange(1000, 1150)
    a = des.run_chunk(scn, plan, 11, ids, events=True)
    b = cohort.run_chunk(scn, plan, 11, ids, events=True)
    for name in a.outcomes:
        np.testing.assert_allclose(a.outcomes[name], b.outcomes[name], rtol=1e-9, atol=1e-9,
                                   err_msg=name)
    for field in ("visit_cpk", "visit_myoglobin", "visit_mmt8", "visit_prednisone"):
        np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=1e-9,
                                   err_msg=field)
    np.testing.assert_array_equal(a.visit_flags, b.visit_flags)
    np.testing.assert_array_equal(a.events.patient, b.events.patient)
    np.testing.assert_array_equal(a.events.kind, b.events.kind)
    np.testing.assert_array_equal(a.events.flags, b.events.flags)
    np.testing.assert_array_equal(a.events.day, b.events.day)
    np.testing.assert_allclose(a.events.prednisone, b.events.prednisone, rtol=1e-12)


def test_patient_results_do_not_depend_on_the_other_patients(first_line):
    """Patient k is the same whether it runs alone, in a small or in a large chunk."""
    plan = course.make_plan(first_line)
    big = cohort.run_chunk(first_line, plan, 3, np.arange(0, 400))
    small = des.run_chunk(first_line, plan, 3, np.array([123, 7]))
    for name in big.outcomes:
        np.testing.assert_allclose(small.outcomes[name], big.outcomes[name][[123, 7]],
                                   rtol=1e-9, err_msg=name)
    np.testing.assert_allclose(small.visit_cpk, big.visit_cpk[[123, 7]], rtol=1e-9)
