"""A task registered outside nlpkit (tests/toy_task.py) passes the whole task contract, with no change to nlpkit."""

import pytest

from nlpkit.errors import NlpkitError
from nlpkit.tasks import all_tasks, register_task
from task_contract import TaskContract
from toy_task import QuestionTask


@pytest.fixture(scope="class")
def task():
    return all_tasks()[QuestionTask.name]


class TestToyTask(TaskContract):
    pass


def test_the_toy_task_is_in_the_registry_and_a_duplicate_name_is_refused():
    assert isinstance(all_tasks()["toy-question"], QuestionTask)
    with pytest.raises(ValueError, match="registered twice"):
        register_task(type("Again", (QuestionTask,), {}))
    with pytest.raises(ValueError, match="not a subclass"):
        register_task(type("NotATask", (), {"name": "x"}))
    with pytest.raises(NlpkitError):
        QuestionTask().load("/nonexistent")
