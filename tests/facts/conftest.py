from __future__ import annotations

import pytest

from tests.facts.helpers import CASES


@pytest.fixture(params=CASES)
def lab_case(request) -> str:
    return request.param
