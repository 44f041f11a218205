"""The `nlpkit` command: train, predict and evaluate every registered task.

    nlpkit train TASK [options]          train a model, write its run folder (models/TASK)
    nlpkit predict TASK TEXT...          run a trained model on texts (arguments, --file or stdin)
    nlpkit evaluate TASK --data FILE     measure a trained model on held-out data
    nlpkit VERB ...                      a task's own name for its predict (`aliases`)
    nlpkit vocabulary RUN                print a trained run's vocabulary
    nlpkit export RUN --out DIR          write a run as a TensorFlow SavedModel on raw strings (TF Serving)
    nlpkit compare TASK --cells ...      train one model per cell and compare them (nlpkit.lab)
    nlpkit gradients [--model RUN]       measure how the loss's gradient fades with distance (nlpkit.lab)
    nlpkit serve RUN [RUN ...]           serve trained runs over HTTP, with a demo page (nlpkit.serving)

Every command is built from the task registry (`nlpkit.tasks`): a task's
option dataclasses become its click options, and the verbs it declares are
its predict command under another name, with the very same options. This file
names no task. User mistakes (`NlpkitError`, bad options) are reported here,
in one place, as one line on stderr with exit code 2; an option is named by
its flag (`--dropout`). Running out of memory is reported the same way, as a
last resort (the option checks and the input limits are there to prevent it).
TensorFlow is imported only once a command runs, so every `--help` answers
at once.
"""

import dataclasses
import json
import os
import re
import shlex
import sys

import click
from click.core import ParameterSource

import nlpkit
from nlpkit.config import OptionError
from nlpkit.errors import NlpkitError, at
from nlpkit.lab import compare as compare_lab
from nlpkit.lab import gradients as gradient_lab
from nlpkit.runtime import backend, export as exporting, runs, transfer
from nlpkit.runtime.task import DEFAULT_MODELS_DIR, warning
from nlpkit.serving.limits import ServeLimits
from nlpkit.tasks import all_tasks
from nlpkit.text import datasets

TYPES = {int: click.INT, float: click.FLOAT, str: click.STRING}


def load_predictor(task, model_dir):
    """`task.load(model_dir)`, once the folder is known to hold a run of `task`: a wrong folder is refused
    before TensorFlow starts (in a fraction of a second, not several)."""
    runs.read_manifest(model_dir, task.name)
    backend.start()
    return task.load(model_dir)


class App(click.Group):
    """The root group: turns every user-facing failure into one line and an exit code, and offers
    each verb that tasks declare (`Task.aliases`) as a command of its own."""

    def list_commands(self, ctx):
        return sorted({*super().list_commands(ctx), *alias_verbs()})

    def get_command(self, ctx, name):
        return super().get_command(ctx, name) or alias_command(name)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as error:
            command = error.ctx.command_path if error.ctx else "nlpkit"
            fail(f"{error.format_message()} (see '{command} --help')")
        except OptionError as error:
            fail(error.for_cli())
        except NlpkitError as error:
            fail(str(error), code=getattr(error, "exit_code", 2))
        except (click.Abort, KeyboardInterrupt):
            fail("interrupted; nothing was saved.", code=130)
        except click.ClickException as error:
            fail(error.format_message(), code=error.exit_code)
        except Exception as error:
            if not out_of_memory(error):
                raise
            fail(f"out of memory{allocation(error)}; lower --units, --layers, --batch-size, --max-length or "
                 "--max-tokens, or give less data.")
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


def out_of_memory(error):
    """Whether `error` says memory ran out: Python's MemoryError, or TensorFlow's ResourceExhaustedError,
    known by its class name (importing TensorFlow to name the class would slow every `--help`)."""
    return any(cls.__name__ in ("MemoryError", "ResourceExhaustedError") for cls in type(error).__mro__)


def allocation(error):
    """The tensor shape that TensorFlow's OOM message names, as a note for the error line ("" if none)."""
    found = re.search(r"shape ?\[([\d, ]+)\]", str(error))
    return f" (a tensor of shape [{', '.join(found[1].replace(' ', '').split(','))}] did not fit)" if found else ""


def fail(message, code=2):
    """One line on stderr, whatever the message quotes (a file name or a JSON key may hold a newline)."""
    message = str(message).replace("\r", "\\r").replace("\n", "\\n")
    click.echo(f"nlpkit: error: {message}", err=True)
    sys.exit(code)


def dataclass_options(options_class, exclude=()):
    """Click options for every field of an options dataclass but those in `exclude` (help, choices and flag
    aliases from its metadata)."""

    def decorate(function):
        for field in reversed([f for f in dataclasses.fields(options_class) if f.name not in exclude]):
            flag = "--" + field.name.replace("_", "-")
            names = [flag, *field.metadata.get("aliases", ())]
            help_text = field.metadata.get("help", "")
            choices = field.metadata.get("choices")
            if field.type is bool:
                no_flag = "--no-" + field.name.replace("_", "-")
                decorator = click.option(f"{flag}/{no_flag}", field.name, default=field.default,
                                         show_default=True, help=help_text)
            else:
                kind = click.Choice([c for c in choices if c is not None]) if choices else TYPES[field.type]
                decorator = click.option(*names, field.name, type=kind, default=field.default,
                                         show_default=field.default is not None, help=help_text)
            function = decorator(function)
        return function

    return decorate


def read_lines(texts, file, hint, optional=False):
    """Texts from the arguments, else one per line from --file or stdin (`hint` says how to give them).

    An empty argument is an error; blank lines of a file are skipped, and one
    stderr line says how many. With `optional`, no arguments, no --file and
    a terminal or empty stdin give no texts (the task then predicts for all it knows).
    """
    if texts:
        for number, text in enumerate(texts, start=1):
            if not text.strip():
                raise NlpkitError(f"argument {number}: the text is empty.")
        return list(texts)
    if file is None and sys.stdin.isatty():
        if optional:
            return []
        raise click.UsageError(f"give {hint}")
    name = file or "<stdin>"
    raw = datasets.read_bytes(file) if file else datasets.read_stream(sys.stdin.buffer, name)
    if optional and file is None and not raw:
        return []
    lines = datasets.decode_utf8(raw, name).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    kept = [line for line in lines if line.strip()]
    if not kept:
        raise NlpkitError(f"{at(name)}: no texts to predict; give {hint}.")
    if len(kept) < len(lines):
        warning(f"{name}: skipped {len(lines) - len(kept)} blank line(s).")
    return kept


def echo_stream(pieces):
    """Writes text pieces as they come, flushing each, so a reader sees output while it is generated.

    A reader that goes away (`nlpkit ... | head`) ends the output quietly, not with an error.
    """
    try:
        for piece in pieces:
            click.echo(piece, nl=False)
            sys.stdout.flush()
    except BrokenPipeError:
        # Point stdout at /dev/null so that Python's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def task_of_run(model_dir):
    """The registered task that wrote the run folder `model_dir`, as its manifest says."""
    info = runs.read_manifest(model_dir)
    tasks = all_tasks()
    if info.get("task") not in tasks:
        raise NlpkitError(f"{os.path.join(model_dir, runs.MANIFEST_FILE)}: names no known task "
                          f"({info.get('task')!r}).")
    return tasks[info["task"]]


def examples_epilog(lines):
    return "\b\n" + "\n".join(f"    {line}" for line in lines) if lines else None


def quoted(text):
    return '"' + text.replace('"', '\\"') + '"'


# --- the commands ------------------------------------------------------------------------------


@click.group(cls=App, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(nlpkit.__version__, prog_name="nlpkit")
def main():
    """nlpkit: recurrent networks (SimpleRNN, LSTM, GRU) for NLP tasks.

    Train a model with `nlpkit train TASK`, then use it with `nlpkit predict
    TASK` and measure it with `nlpkit evaluate TASK`. Models are stored in
    models/TASK unless --out/--model say otherwise. Everything runs offline.
    """


class TaskCommands(click.Group):
    """A group with one command per registered task, made by `make(task)` when it is used, so that
    every task in the registry has its command (one registered later, by a plugin or a test, too)."""

    def __init__(self, make, **kwargs):
        super().__init__(**kwargs)
        self.make = make

    def list_commands(self, ctx):
        return list(all_tasks())

    def get_command(self, ctx, name):
        task = all_tasks().get(name)
        return None if task is None else self.make(task)


def task_group(make):
    return main.group(cls=TaskCommands, make=make)


@task_group(lambda task: train_command(task))
def train():
    """Train a model and write its run folder (models/TASK by default).

    The run folder holds model.keras and preprocessor.json (vocabulary), manifest.json,
    metrics.json, history.json and learning_curve.png. It replaces an earlier
    run only once training has succeeded. Every epoch is backed up beside it
    (.TASK.backup), so the same command resumes a killed run; a run already
    trained with the same options and data is not trained again (--force).
    """


@task_group(lambda task: predict_command(task, task.name))
def predict():
    """Run a trained model on texts from arguments, --file or stdin (one per line)."""


@task_group(lambda task: evaluate_command(task))
def evaluate():
    """Measure a trained model on held-out data."""


def train_command(task):
    @click.command(name=task.name, help=f"{task.summary}\n\nWrites models/{task.name} unless --out is given.",
                   epilog=examples_epilog([f"nlpkit train {task.name}",
                                           f"nlpkit train {task.name} --cell gru --layers 2 --epochs 5"]))
    @dataclass_options(task.TrainOptions)
    @click.pass_context
    def command(context, **values):
        options = task.TrainOptions(**values).validate()
        typed = {name for name in values if context.get_parameter_source(name) is not ParameterSource.DEFAULT}
        options = transfer.inherit(options, explicit=typed)  # TensorFlow starts once the data is read
        identity = task.run_identity(options)
        finished = None if options.force else task.finished_run(options, identity)
        if finished is not None:
            click.echo(f"{finished}: already trained with these options and data; nothing to do "
                       "(--force trains again).")
            return
        result = task.train(options, identity)
        click.echo(f"\nheld-out validation metrics ({result['folder']}):")
        click.echo(task.format_metrics(result["validation"]))

    return command


def predict_command(task, name):
    """`nlpkit predict TASK`, and the same command under each of the task's aliases."""
    example = " ".join(quoted(text) for text in task.examples)
    path = f"predict {task.name}" if name == task.name else name

    @click.command(name=name, help=f"{task.summary}\n\n{task.output_help}",
                   epilog=examples_epilog([f"nlpkit {path} {example}", f"cat texts.txt | nlpkit {path} --json"]))
    @click.argument("texts", nargs=-1)
    @click.option("--model", "model_dir", default=str(task.default_run_folder()), show_default=True,
                  help="Run folder of a trained model.")
    @click.option("--file", type=click.Path(dir_okay=False),
                  help="Read one text per line from this file (blank lines are skipped).")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object per text.")
    @dataclass_options(task.PredictOptions)
    def command(texts, model_dir, file, as_json, **values):
        options = task.PredictOptions(**values).validate()
        inputs = task.read_inputs(texts, options, lambda: read_lines(texts, file, task.input_hint,
                                                                     optional=task.inputs_optional))
        predictor = load_predictor(task, model_dir)
        echo_stream(task.predict_output(predictor, inputs, options, as_json))

    return command


def evaluate_command(task):
    @click.command(name=task.name, help=f"Measure a trained {task.name} model on held-out data."
                                        + (f"\n\n{task.evaluate_help}" if task.evaluate_help else ""))
    @click.option("--model", "model_dir", default=str(task.default_run_folder()), show_default=True,
                  help="Run folder of a trained model.")
    @click.option("--data", required=True, help="Data file (or tfds:NAME[:SPLIT]) to evaluate on.")
    @dataclass_options(task.EvaluateOptions)
    @click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
    def command(model_dir, data, as_json, **values):
        options = task.EvaluateOptions(**values).validate()
        predictor = load_predictor(task, model_dir)
        report = task.evaluate(predictor, data, options)
        click.echo(json.dumps(report, indent=2) if as_json else task.format_metrics(report))

    return command


@task_group(lambda task: compare_command(task))
def compare():
    """Train one model per recurrent cell, with identical options, data and seeds, and compare them.

    Writes OUT/compare.md, compare.json and compare.png (learning curves and the
    final metric per cell), keeps every cell's run folder under OUT, and its
    TensorBoard logs under OUT/tensorboard. The same command again resumes an
    interrupted compare, cell by cell.
    """


def compare_command(task):
    # The cell, destination and logs of each run are the comparison's to set.
    shared = ("cell", "out", "tensorboard")

    @click.command(name=task.name, help=f"Train one {task.name} model per cell and compare them.\n\n"
                                        f"Takes every option of `nlpkit train {task.name}` but --cell, --out and "
                                        "--tensorboard.",
                   epilog=examples_epilog([f"nlpkit compare {task.name} --cells rnn,lstm,gru",
                                           f"nlpkit compare {task.name} --seeds 3 --time-budget 2"]))
    @click.option("--cells", default="rnn,lstm,gru", show_default=True, help="The cells to compare, comma-separated.")
    @click.option("--seeds", default=1, show_default=True, type=click.INT,
                  help="Runs per cell, with seeds --seed, --seed + 1, ...: the table shows mean ± sd.")
    @click.option("--out", "out", default=f"{DEFAULT_MODELS_DIR}/compare-{task.name}", show_default=True,
                  help="Folder for the comparison and every cell's run.")
    @dataclass_options(task.TrainOptions, exclude=shared)
    def command(cells, seeds, out, **values):
        cells = compare_lab.parse_cells(cells)
        options = task.TrainOptions(**values, cell=cells[0]).validate()
        planned = compare_lab.plan(options, cells, seeds, out)  # every run's options checked before TensorFlow starts
        backend.start()
        command_line = "nlpkit " + " ".join(shlex.quote(arg) for arg in sys.argv[1:])
        rows = compare_lab.compare(task, planned, out, command_line, announce=click.echo)
        click.echo(f"\n{compare_lab.format_table(rows)}\n\nwritten: {os.path.join(out, compare_lab.TABLE_FILE)}, "
                   f"{compare_lab.JSON_FILE}, {compare_lab.FIGURE_FILE}")

    return command


class AliasOfSeveral(click.Command):
    """`nlpkit VERB` for a verb that several tasks declare: the `predict TASK` of the task that trained
    --model (by default the first of them with a model in models/), with that command's options."""

    def __init__(self, verb, commands):
        super().__init__(verb, context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
                         add_help_option=False, help=f"The predict command of the task that trained --model: "
                                                     f"{', '.join(f'predict {name}' for name in commands)}.")
        self.commands = commands

    def parse_args(self, ctx, args):
        ctx.meta["forwarded"] = list(args)
        return super().parse_args(ctx, [])

    def invoke(self, ctx):
        args = ctx.meta["forwarded"]
        name = self.chosen_task(args)
        return self.commands[name].main(args, prog_name=ctx.command_path, standalone_mode=False)

    def chosen_task(self, args):
        for position, arg in enumerate(args):
            if arg == "--model" and position + 1 < len(args):
                return self.task_of(args[position + 1])
            if arg.startswith("--model="):
                return self.task_of(arg.split("=", 1)[1])
        if "--help" in args or "-h" in args:
            return next(iter(self.commands))
        for name in self.commands:
            if all_tasks()[name].default_run_folder().is_dir():
                return name
        return next(iter(self.commands))

    def task_of(self, model_dir):
        name = task_of_run(model_dir).name
        if name not in self.commands:
            raise NlpkitError(f"{model_dir}: holds a {name} model, and {name} models do not {self.name} text "
                              f"(`nlpkit {self.name}` runs {' and '.join(self.commands)} models).")
        return name


def alias_verbs():
    """{verb: [tasks declaring it]} of the registered tasks."""
    verbs = {}
    for task in all_tasks().values():
        for verb in task.aliases:
            verbs.setdefault(verb, []).append(task)
    return verbs


def alias_command(verb):
    """The command of a verb tasks declare: the task's predict under that name, or with several tasks,
    the predict of the task that trained --model."""
    tasks = alias_verbs().get(verb)
    if not tasks:
        return None
    if len(tasks) == 1:
        return predict_command(tasks[0], verb)
    return AliasOfSeveral(verb, {task.name: predict_command(task, verb) for task in tasks})


@main.command()
@click.argument("model_dir", metavar="RUN")
def vocabulary(model_dir):
    """Print a trained run's vocabulary: one token per line, UTF-8, from id 2 on.

    Ids 0 and 1 (padding and unknown) are left out; a newline, carriage return
    or backslash inside a token is written \\n, \\r or \\\\. The file trains
    another run on the same tokens with --vocabulary. A translate run prints its
    source side; a --tokens subword run, its SentencePiece pieces ("\u2581" starts a word).

    \b
        nlpkit vocabulary models/TASK > vocab.txt
        nlpkit train TASK --vocabulary vocab.txt --out models/same-tokens
    """
    backend.start()
    from nlpkit.text.tokenization import vocabulary_lines

    task = task_of_run(model_dir)
    model, _ = runs.load_run(model_dir, task.name)
    echo_stream([vocabulary_lines(model.vectorizer.get_vocabulary()[2:])])


def export_options(function):
    """The options of every task's exports (`Task.ExportOptions`), each used by the tasks that have it."""
    for options_class, field in reversed(list(exporting.option_fields().values())):
        function = dataclass_options(options_class, exclude=[f.name for f in dataclasses.fields(options_class)
                                                             if f.name != field.name])(function)
    return function


@main.command(epilog=examples_epilog(["nlpkit export models/sentiment --out export/sentiment/1",
                                      "docker run -p 8501:8501 -v $PWD/export/sentiment:/models/sentiment "
                                      "-e MODEL_NAME=sentiment tensorflow/serving"]))
@click.argument("model_dir", metavar="RUN")
@click.option("--out", required=True, help="Folder to write the SavedModel to: for TensorFlow Serving, "
                                           "models/NAME/VERSION (a number), e.g. export/sentiment/1.")
@click.option("--format", "export_format", type=click.Choice(exporting.FORMATS), default=exporting.FORMATS[0],
              show_default=True, help="What to write (a TensorFlow SavedModel).")
@click.option("--force", is_flag=True, help="Replace an earlier export at --out.")
@export_options
@click.pass_context
def export(context, model_dir, out, export_format, force, **values):
    """Write a trained run as a TensorFlow SavedModel whose serving_default signature takes raw strings.

    Sentiment gives labels and probabilities, next-word the top-k next words, tagging a tag per word
    (split at white space, as predict --pretokenized), translate the greedy translation, chargen a
    continuation of a given length, temperature and rng seed. tf.saved_model.load(DIR) or TensorFlow
    Serving runs it without nlpkit; `saved_model_cli show --all --dir DIR` lists the signature. The
    folder is written whole or not at all. Forecast runs are not exported (they read numbers, not text).
    """
    task = exporting.exported_task(model_dir)  # before TensorFlow starts: a wrong folder fails at once
    typed = [name for name in values if context.get_parameter_source(name) is not ParameterSource.DEFAULT]
    options = exporting.task_options(task, values, typed)
    exporting.check_destination(out, force)
    backend.start()
    info = exporting.export_run(task, model_dir, out, options, force)
    click.echo(exporting.summary(out, info))


@main.command(epilog=examples_epilog(["nlpkit gradients --variants rnn,rnn+irnn,rnn+layer-norm,lstm,gru",
                                      "nlpkit gradients --model models/next-word --model models/chargen --json"]))
@click.option("--model", "run_folders", multiple=True, metavar="RUN",
              help="Run folder of a trained model of any text task, measured instead of untrained models "
                   "(repeat for several lines).")
@dataclass_options(gradient_lab.GradientOptions)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of the table.")
def gradients(run_folders, as_json, **values):
    """Measure the vanishing gradient: the norm of the gradient of the loss at the last step T with respect
    to the input at each earlier step, averaged over real sequences of the task's corpus.

    Prints, per model, g(1) and g(T), their ratio and the distance at which g has fallen 100-fold, and
    writes gradients.png (g against distance, log scale) and gradients.json to --out. Without --model it
    compares untrained language models (--variants) of the same size, from the same seed. The exact
    definitions are in nlpkit/lab/gradients.py.
    """
    options = gradient_lab.GradientOptions(**values).validate()
    gradient_lab.check_request(options, run_folders)
    backend.start()
    report = gradient_lab.measure(options, run_folders)
    json_path, png_path = gradient_lab.write_outputs(report, options.out)
    click.echo(json.dumps(report, indent=2, ensure_ascii=False) if as_json else
               f"{gradient_lab.format_table(report)}\nwrote {png_path} and {json_path}")


@main.command(epilog=examples_epilog(["nlpkit serve models/sentiment models/chargen",
                                      "nlpkit serve en-fr=models/translate --port 8080",
                                      "curl -s localhost:8000/v1/sentiment -d '{\"texts\": [\"a fine film\"]}'"]))
@click.argument("run_folders", metavar="RUN...", nargs=-1, required=True)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (127.0.0.1: this machine only; 0.0.0.0: every network it is on).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free one; the 'serving on' line names it).")
@dataclass_options(ServeLimits)
def serve(run_folders, host, port, **values):
    """Serve trained runs over HTTP, with a demo page at /.

    Each RUN (a run folder, or NAME=FOLDER) answers POST /v1/NAME with
    {"texts": [...], ...} and any of its predict options (Python names: top_k),
    giving the JSON that `nlpkit predict TASK --json` prints for each text.
    GET /v1/models lists the runs and their fields; GET /healthz says the
    server is up; a chargen run also streams, POST /v1/NAME/stream. Concurrent
    requests are batched into one model call. A request over a limit gets a
    4xx JSON error naming it. Binds to this machine only unless --host says so.
    """
    from nlpkit.serving import server

    limits = ServeLimits(**values).validate()
    server.serve(run_folders, host, port, limits, task_of_run, load_predictor,
                 announce=lambda line: (click.echo(line), sys.stdout.flush()))


def run():
    """The `nlpkit` command (the console script and `python cli.py`): `main`, then `exit_without_teardown`."""
    try:
        code = main.main(standalone_mode=False)
    except SystemExit as stop:
        code = stop.code
    if code is not None and not isinstance(code, int):
        click.echo(code, err=True)
        code = 1
    exit_without_teardown(code or 0)


def exit_without_teardown(code):
    """Ends the process once its output is flushed and Python's exit handlers have run, without the
    interpreter's teardown of every module. With TensorFlow loaded that teardown took about 2 s, which
    every `nlpkit` command paid after its work was done: a one-text `nlpkit predict sentiment` took 8.5 s
    with it and 6.9 s without (medians of 5). Only the console script exits so; `main` itself (click's
    CliRunner, a Python caller) returns or raises as click's commands do."""
    import atexit

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # a reader that went away, or a closed stream
            pass
    atexit._run_exitfuncs()  # logging's and tempfile's clean-ups, and any library's own
    os._exit(code)


if __name__ == "__main__":
    run()
