"""Every registered task passes the task contract (`task_contract.TaskContract`).

One test class per task, made from the registry: pytest-xdist keeps a class on one
worker (`--dist loadscope`), so separate classes let the two workers share the tasks.
"""

import pytest

from nlpkit.tasks import all_tasks
from task_contract import TaskContract


def contract_class(name):
    @pytest.fixture(scope="class")
    def task(self):
        return all_tasks()[name]

    title = "".join(part.capitalize() for part in name.replace("-", "_").split("_"))
    return type(f"TestTask{title}", (TaskContract,), {"task": task, "__doc__": f"The contract, for {name}."})


for _name in sorted(all_tasks()):
    _cls = contract_class(_name)
    globals()[_cls.__name__] = _cls
