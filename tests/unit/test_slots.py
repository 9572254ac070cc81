"""Request slots (service/slots.py): a fixed number at once, the next refused at once with 429."""

from __future__ import annotations

import pytest

from service.errors import TooManyRequestsError
from service.slots import RequestSlots


def test_slots_refuse_beyond_the_limit_until_one_is_given_back() -> None:
    slots = RequestSlots(limit=2, retry_after_s=3)
    slots.take()
    slots.take()
    with pytest.raises(TooManyRequestsError, match="more than 2 concurrent") as refused:
        slots.take()
    assert refused.value.headers == {"Retry-After": "3"}
    assert slots.active == 2  # a refusal takes nothing
    slots.give_back()
    slots.take()
    assert slots.active == 2
