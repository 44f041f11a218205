"""Data-parallel training on tf.distribute: `nlpkit train TASK --distribute none|mirrored|multi-worker`.

    none          one process, TensorFlow's default device placement.
    mirrored      one process, `tf.distribute.MirroredStrategy` over the local GPUs, or, on a machine
                  without one, over --replicas logical CPU devices (made before TensorFlow sets up its
                  devices, so before any TensorFlow op of the process).
    multi-worker  one process per worker, `tf.distribute.MultiWorkerMirroredStrategy`, the cluster and
                  this worker's place in it read from the environment variable TF_CONFIG, the standard
                  way: {"cluster": {"worker": ["host1:port", "host2:port"]},
                        "task": {"type": "worker", "index": 0}}.

The model is built and compiled under `strategy.scope()` and Keras' `model.fit`
distributes each batch: `--batch-size` is the global batch, split across the
replicas, so a run compares with a single-process run on the same batch. The
gradients are averaged by tf.distribute's all-reduce; nothing here averages
or communicates by hand. The learning rate is never scaled.

Only the chief (the "chief" task, or worker 0 when there is none) writes the
run folder and the epoch backups. Every other worker writes both to a
temporary folder that is deleted when it ends, and resumes from the chief's
backups (the workers of one machine, or of machines sharing the run's file
system, read the same folder): the standard Keras/TF pattern. After training,
the trained weights are copied into a model outside the strategy, which is
measured and saved like a single-process run's.

A worker that dies: TensorFlow's health check of the cluster (or the failed
collective itself) aborts the others' collectives with an UnavailableError,
which `fit` turns into one line and exit code 1 (`WorkerLost`). Running the
same command again on every worker resumes from the last epoch backup.

Keras 3.15's TensorFlow trainer has two defects with MultiWorkerMirroredStrategy
(keras-team/keras#20585, tensorflow/tensorflow#72388), both in the reduction of
per-worker values, not in the training step: it reduces the first distributed
batch (to build the model) as one nested value, which this strategy's `reduce`
does not accept, and it reduces each step's scalar losses and metrics along an
axis 0 they do not have. `keras_multi_worker_fixes` replaces those two
reductions, only for this strategy, by the ones the strategy supports.
"""

import contextlib
import dataclasses
import json
import os
import re

from nlpkit.errors import NlpkitError

CONFIG_VARIABLE = "TF_CONFIG"
JOBS = ("chief", "worker")  # MultiWorkerMirroredStrategy's jobs (no parameter servers, no evaluator here)
MAX_REPLICAS = 8
ADDRESS = re.compile(r"[^\s:/]+:\d{1,5}|\[[0-9a-fA-F:]+\]:\d{1,5}")


class WorkerLost(NlpkitError):
    """Another worker of a multi-worker run stopped answering; rerun the same command on every worker."""

    exit_code = 1


def cluster_config(environ=None):
    """(cluster, task) of $TF_CONFIG, checked: NlpkitError in one line for a value that does not parse or
    lacks the cluster or this worker's task."""
    text = (os.environ if environ is None else environ).get(CONFIG_VARIABLE, "")
    where = f"--distribute multi-worker: {CONFIG_VARIABLE}"
    if not text.strip():
        raise NlpkitError(f"{where} is not set; give each worker the cluster and its own task, as "
                          '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", '
                          '"index": 0}} (see the README).')
    try:
        config = json.loads(text)
    except ValueError as error:
        raise NlpkitError(f"{where} does not parse as JSON ({error}).") from None
    if not isinstance(config, dict):
        raise NlpkitError(f"{where} is not a JSON object.")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise NlpkitError(f'{where} has no "cluster" (jobs with their host:port addresses).')
    for job, addresses in cluster.items():
        if job not in JOBS:
            raise NlpkitError(f"{where}: job {job!r} in the cluster; multi-worker training runs only "
                              f"{' and '.join(JOBS)} jobs.")
        if (not isinstance(addresses, list) or not addresses
                or not all(isinstance(a, str) and ADDRESS.fullmatch(a) for a in addresses)):
            raise NlpkitError(f"{where}: the {job} job must list host:port addresses.")
    if len(cluster.get("chief", [])) > 1:
        raise NlpkitError(f"{where}: a cluster has one chief at most.")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise NlpkitError(f'{where} has no "task" ({{"type": "worker", "index": N}}: which worker this is).')
    kind, index = task["type"], task["index"]
    if kind not in cluster:
        raise NlpkitError(f"{where}: the task's type {kind!r} is not a job of the cluster.")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
        raise NlpkitError(f"{where}: the task's index {index!r} is not one of the {len(cluster[kind])} "
                          f"{kind} addresses (0 to {len(cluster[kind]) - 1}).")
    return cluster, task


def is_chief(cluster, task):
    """The chief is the "chief" task, or worker 0 in a cluster without one (TensorFlow's rule)."""
    if "chief" in cluster:
        return task["type"] == "chief"
    return task["type"] == "worker" and task["index"] == 0


@dataclasses.dataclass
class Distribution:
    """How a run is spread: the strategy's name, the tf.distribute strategy (None for one process),
    replicas in all, worker processes, and whether this process is the one that writes the run."""

    name: str = "none"
    strategy: object = None
    replicas: int = 1
    workers: int = 1
    chief: bool = True
    task: str = ""  # "worker 1" in a multi-worker run

    def scope(self):
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def record(self):
        """What the manifest records."""
        return {"strategy": self.name, "replicas": self.replicas, "workers": self.workers}


def plan(options):
    """The distribution the options ask for, before any data is read: for a multi-worker run, the workers and
    whether this one is the chief (from TF_CONFIG). A distributed run starts TensorFlow here, to refuse another
    Keras backend before anything else is done (no TensorFlow op runs yet: logical devices can still be made)."""
    name = getattr(options, "distribute", "none")
    if name != "none":
        from nlpkit.runtime import backend

        backend.start()
        check_backend(name)
    if name != "multi-worker":
        return Distribution(name)
    cluster, task = cluster_config()
    workers = sum(len(addresses) for addresses in cluster.values())
    return Distribution(name, workers=workers, replicas=workers, chief=is_chief(cluster, task),
                        task=f"{task['type']} {task['index']}")


def start(distribution, options):
    """Creates the strategy of `distribution` (the devices first): call it once TensorFlow is imported and
    before any TensorFlow op, as logical devices cannot be made after."""
    if distribution.name == "mirrored":
        devices = mirrored_devices(getattr(options, "replicas", None))
        import tensorflow as tf

        distribution.strategy = tf.distribute.MirroredStrategy(devices)
        distribution.replicas = distribution.strategy.num_replicas_in_sync
    elif distribution.name == "multi-worker":
        import tensorflow as tf

        keras_multi_worker_fixes()
        distribution.strategy = tf.distribute.MultiWorkerMirroredStrategy()
        distribution.replicas = distribution.strategy.num_replicas_in_sync
    return distribution


def check_backend(name):
    """tf.distribute distributes Keras models of the TensorFlow backend only: on another, a strategy's scope
    would be silently ignored, and the run trained in one process (NlpkitError instead)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        raise NlpkitError(f"--distribute {name} runs on tf.distribute, which needs Keras' TensorFlow "
                          f"backend, not {keras.backend.backend()}; run it with KERAS_BACKEND=tensorflow (the run "
                          "it writes loads on either backend).")


def mirrored_devices(replicas=None):
    """The devices of a mirrored run: the first `replicas` GPUs (all by default), or where there is none,
    `replicas` logical CPU devices (by default one per core, at most MAX_REPLICAS)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        count = replicas or len(gpus)
        if count > len(gpus):
            raise NlpkitError(f"--replicas {count}: this machine has {len(gpus)} GPU(s).")
        return [f"/gpu:{i}" for i in range(count)]
    count = replicas or max(1, min(os.cpu_count() or 1, MAX_REPLICAS))
    split_cpu(count)
    return [f"/cpu:{i}" for i in range(count)]


def split_cpu(count):
    """Makes `count` logical CPU devices of the first CPU (TensorFlow's CPU device is one otherwise).
    Possible only before TensorFlow sets up its devices; a process that has already set them up as
    asked is left as it is."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    configured = tf.config.get_logical_device_configuration(cpu)  # (listing logical devices would set them up)
    if len(configured or [None]) == count:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:
        raise NlpkitError(f"--distribute mirrored: cannot make {count} CPU devices, as TensorFlow has already set "
                          f"up {len(tf.config.list_logical_devices('CPU'))} in this process (call "
                          "nlpkit.runtime.distribute.split_cpu before any TensorFlow op).") from None


def lost_worker(error, distribution):
    """The `WorkerLost` line for a TensorFlow error that says a peer of a multi-worker run went away, or None."""
    import tensorflow as tf

    if distribution.name != "multi-worker":
        return None
    if not isinstance(error, (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
                              tf.errors.CancelledError, tf.errors.AbortedError, tf.errors.InternalError)):
        return None
    return WorkerLost(f"multi-worker training stopped ({distribution.task}): another worker stopped answering "
                      f"(TensorFlow: {type(error).__name__} in a collective operation); rerun the same command on "
                      "every worker to resume from the last epoch backup.")


_FIXED = []


def keras_multi_worker_fixes():
    """Replaces the two reductions of Keras' TensorFlow trainer that fail under MultiWorkerMirroredStrategy
    (see the module's docstring) by ones this strategy supports; other strategies keep Keras' own. Once."""
    if _FIXED:
        return
    import tensorflow as tf
    from keras import tree
    from keras.src.backend.tensorflow import trainer

    multi_worker = trainer._collective_all_reduce_multi_worker
    reduce_per_replica = trainer.reduce_per_replica
    maybe_symbolic_build = trainer.TensorFlowTrainer._maybe_symbolic_build

    def reduce_step_outputs(values, strategy, reduction="auto"):
        # Keras: strategy.reduce("MEAN", v, axis=0) on scalars. A step's losses and metrics are each worker's
        # mean over its equal share of the global batch: their mean over the workers is the global one.
        if reduction in ("auto", "mean") and multi_worker(strategy):
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return reduce_per_replica(values, strategy, reduction)

    def build_from_local_batch(self, iterator=None, data_batch=None):
        # Keras: strategy.reduce over the whole nested first batch, which this strategy cannot reduce. Only
        # the shapes and dtypes of a batch are needed to build the model: this worker's share gives them.
        strategy = self._distribute_strategy
        if iterator is not None and strategy is not None and multi_worker(strategy):
            for _, _, batches in iterator:
                data_batch = tree.map_structure(
                    lambda v: (strategy.experimental_local_results(v)[0]
                               if isinstance(v, tf.distribute.DistributedValues) else v), next(batches))
                break
            iterator = None
        return maybe_symbolic_build(self, iterator=iterator, data_batch=data_batch)

    trainer.reduce_per_replica = reduce_step_outputs
    trainer.TensorFlowTrainer._maybe_symbolic_build = build_from_local_batch
    _FIXED.append(True)
