"""Every registered task passes the task contract (`task_contract.TaskContract`)."""

import pytest

from nlpkit.tasks import all_tasks
from task_contract import TaskContract


@pytest.fixture(scope="class", params=sorted(all_tasks()))
def task(request):
    return all_tasks()[request.param]


class TestEveryRegisteredTask(TaskContract):
    pass
