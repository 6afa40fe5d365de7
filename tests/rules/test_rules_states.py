"""rules/states.py: every spelling of a terminal state Azure uses reads the same (issue 8 item 2)."""

import pytest

from batch_images.rules import states


@pytest.mark.parametrize("value", ["Failed", "FAILED", "failed", "Canceled", "canceled", "Cancelled", "CANCELLED"])
def test_failed_and_both_canceled_spellings_are_terminal_failures(value):
    assert states.is_failed(value) and states.is_terminal(value) and not states.is_succeeded(value)


@pytest.mark.parametrize("value", ["Succeeded", "succeeded", "SUCCEEDED", " Succeeded "])
def test_succeeded_in_any_case(value):
    assert states.is_succeeded(value) and states.is_terminal(value) and not states.is_failed(value)


@pytest.mark.parametrize("value", [None, "", "Creating", "updating", "Deleting", "Migrating", "Replicating", "Weird"])
def test_running_and_unknown_states_are_not_terminal(value):
    assert not states.is_terminal(value)


def test_canonical_spelling_and_comparison():
    assert states.canonical("Cancelled") == "Canceled" and states.canonical("FAILED") == "Failed"
    assert states.canonical("Weird") == "Weird" and states.canonical(None) is None
    assert states.is_state("completed", "Completed") and states.is_state("UPDATING", "Creating", "Updating")
    assert not states.is_state(None, "Succeeded")
    assert states.is_in_progress("creating") and not states.is_in_progress("Succeeded")
