from __future__ import annotations

import pytest

from fleet.choices import SyncTrigger
from fleet.sync import run_sync
from tests.aksim_server import Aksim


@pytest.fixture
def fleet(wavegate_on_aksim: Aksim, settings) -> Aksim:
    """The test fleet in aksim, synced into Wavegate, with quick preflight scans."""
    settings.WAVEGATE_SCAN_POLL_SECONDS = 0.05
    settings.WAVEGATE_SCAN_DEADLINE_SECONDS = 5.0
    assert run_sync(SyncTrigger.COMMAND).status == "succeeded"
    return wavegate_on_aksim
