"""Every registered visiongates model passes every conformance check (see tests/conformance.py)."""

import pytest
import torch
from conformance import CHECKS

import visiongates
from visiongates.models import model_facts

BIG_MODEL_PARAMS_M = 60  # models above this size run in the slow pass only


def _cases():
    for name in visiongates.list_models():
        facts = model_facts(name)
        big = facts is not None and facts.params_m > BIG_MODEL_PARAMS_M
        for check in CHECKS:
            marks = [pytest.mark.slow] if big and check != "params_match_facts" else []
            yield pytest.param(name, check, marks=marks, id=f"{name}-{check}")


@pytest.mark.parametrize(("name", "check"), list(_cases()))
def test_conformance(name: str, check: str) -> None:
    torch.manual_seed(0)
    CHECKS[check](name)
