from __future__ import annotations

import pytest

from tests.parse.helpers import CASES


@pytest.fixture(params=CASES)
def lab_case(request) -> str:
    return request.param
