"""The `nlpkit` command: train, predict and evaluate every registered task.

    nlpkit train sentiment --cell gru --epochs 5
    nlpkit predict sentiment "A wonderful, moving film."
    nlpkit evaluate sentiment --data reviews.tsv
    nlpkit generate --seed "ROMEO:" --length 500 --temperature 0.8
    nlpkit translate "I am cold." --beam 5

Task choices and their training options come from the task registry and the
tasks' option dataclasses. User mistakes (`NlpkitError`, bad options) are
reported here, in one place, as one line on stderr with exit code 2.
"""

import contextlib
import dataclasses
import json
import os
import sys
from pathlib import Path

import click


@contextlib.contextmanager
def quiet_stderr_fd():
    """Silences file descriptor 2 for a moment: TensorFlow's C++ start-up lines
    bypass TF_CPP_MIN_LOG_LEVEL, and user errors must stay a single line."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
with quiet_stderr_fd():
    import tensorflow  # noqa: F401  (imported here only to keep its start-up quiet)

import nlpkit
from nlpkit import runs
from nlpkit.datasets import decode_utf8
from nlpkit.decoding import SamplingOptions, format_stats
from nlpkit.errors import NlpkitError, at
from nlpkit.tasks import all_tasks
from nlpkit.tokenization import vocabulary_lines

TYPES = {int: click.INT, float: click.FLOAT, str: click.STRING}


class App(click.Group):
    """The root group: turns every user-facing failure into one line and an exit code."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as error:
            command = error.ctx.command_path if error.ctx else "nlpkit"
            fail(f"{error.format_message()} (see '{command} --help')")
        except NlpkitError as error:
            fail(str(error))
        except (click.Abort, KeyboardInterrupt):
            fail("interrupted; nothing was saved.", code=130)
        except click.ClickException as error:
            fail(error.format_message(), code=error.exit_code)
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


def fail(message, code=2):
    click.echo(f"nlpkit: error: {message}", err=True)
    sys.exit(code)


def dataclass_options(options_class):
    """Click options for every field of an options dataclass (help and choices from its metadata)."""

    def decorate(function):
        for field in reversed(dataclasses.fields(options_class)):
            flag = "--" + field.name.replace("_", "-")
            help_text = field.metadata.get("help", "")
            choices = field.metadata.get("choices")
            if field.type is bool:
                no_flag = "--no-" + field.name.replace("_", "-")
                decorator = click.option(f"{flag}/{no_flag}", field.name, default=field.default,
                                         show_default=True, help=help_text)
            else:
                kind = click.Choice([c for c in choices if c is not None]) if choices else TYPES[field.type]
                decorator = click.option(flag, field.name, type=kind, default=field.default,
                                         show_default=field.default is not None, help=help_text)
            function = decorator(function)
        return function

    return decorate


def read_inputs(texts, file):
    """Texts from the arguments, else one per line from --file or stdin; an empty one is an error."""
    if texts:
        located = [(f"argument {i}", text) for i, text in enumerate(texts, start=1)]
    else:
        if file is None and sys.stdin.isatty():
            raise click.UsageError("give texts as arguments, with --file, or on stdin")
        name = file or "<stdin>"
        raw = open_bytes(file) if file else sys.stdin.buffer.read()
        lines = decode_utf8(raw, name).split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        located = [(at(name, number), line) for number, line in enumerate(lines, start=1)]
    for where, text in located:
        if not text.strip():
            raise NlpkitError(f"{where}: the text is empty.")
    if not located:
        raise NlpkitError(f"{file or '<stdin>'}: no texts to predict.")
    return [text for _, text in located]


def echo_lines(lines):
    """Prints lines, each as soon as it is ready (see `echo_stream`)."""
    echo_stream(line + "\n" for line in lines)


def open_bytes(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise NlpkitError(f"{path}: file not found.") from None
    except IsADirectoryError:
        raise NlpkitError(f"{path}: is a folder, not a file.") from None
    except OSError as error:
        raise NlpkitError(f"{path}: cannot be read ({error.strerror}).") from None


def default_model_dir(task):
    return os.path.join("models", task.name)


@click.group(cls=App, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(nlpkit.__version__, prog_name="nlpkit")
def main():
    """nlpkit: recurrent networks (SimpleRNN, LSTM, GRU) for NLP tasks.

    Train a model with `nlpkit train TASK`, then use it with `nlpkit predict
    TASK` and measure it with `nlpkit evaluate TASK`. Models are stored in
    models/TASK unless --out/--model say otherwise. Everything runs offline.
    """


@main.group()
def train():
    """Train a model and write its run folder (models/TASK by default).

    The run folder holds model.keras (vocabulary included), manifest.json,
    metrics.json, history.json and learning_curve.png. It replaces an earlier
    run only once training has succeeded. Every epoch is backed up beside it
    (.TASK.backup), so the same command resumes a killed run; a run already
    trained with the same options and data is not trained again (--force).
    """


@main.group()
def predict():
    """Run a trained model on texts from arguments, --file or stdin (one per line)."""


@main.group()
def evaluate():
    """Measure a trained model on held-out data."""


def task_of_run(model_dir):
    """The registered task that wrote the run folder `model_dir`, as its manifest says."""
    folder = Path(model_dir)
    if not folder.is_dir():
        raise NlpkitError(f"{folder}: no such model folder (train one first, e.g. `nlpkit train chargen`).")
    if not runs.is_run_folder(folder):
        raise NlpkitError(f"{folder}: not an nlpkit model folder (no {runs.MANIFEST_FILE}).")
    info = runs.read_json(folder / runs.MANIFEST_FILE)
    name = info.get("task") if isinstance(info, dict) else None
    tasks = all_tasks()
    if name not in tasks:
        raise NlpkitError(f"{folder / runs.MANIFEST_FILE}: names no known task ({name!r}).")
    return tasks[name]


def read_seed(seed, seed_file):
    """The priming text from --seed or --seed-file (exactly one of them); an empty one is an error."""
    if (seed is None) == (seed_file is None):
        raise click.UsageError("give the text to start from with --seed TEXT or --seed-file PATH (one of them)")
    if seed_file is not None:
        seed = decode_utf8(open_bytes(seed_file), seed_file)
    if seed == "":
        raise NlpkitError(f"{seed_file or '--seed'}: the seed is empty; give at least one character to start from.")
    return seed


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


def streamed_samples(generation, seed, num_samples):
    """Sample 1 piece by piece as it is generated; the other samples of the batch after it."""
    ending = lambda text: "" if text.endswith("\n") else "\n"
    if num_samples > 1:
        yield "--- sample 1 ---\n"
    yield seed
    for chunk in generation:
        yield chunk[0]
    yield ending(seed + generation.samples[0])
    for number, sample in enumerate(generation.samples[1:], start=2):
        yield f"--- sample {number} ---\n{seed}{sample}{ending(seed + sample)}"


@main.command()
@click.option("--model", "model_dir", default=os.path.join("models", "chargen"), show_default=True,
              help="Run folder of a trained model whose task generates text (chargen).")
@click.option("--seed", "seed_text", help="Text to start from: the priming text (not a random seed; see --rng-seed).")
@click.option("--seed-file", type=click.Path(dir_okay=False), help="Read the priming text from this UTF-8 file.")
@dataclass_options(SamplingOptions)
@click.option("--stats", is_flag=True, help="After the samples, print distinct-1/2/3 (character n-grams), the "
                                            "repetition rate and the longest span copied from the training text.")
@click.option("--train-text", type=click.Path(dir_okay=False),
              help="Training text for --stats' longest copy. Default: the file named in the run's manifest.")
def generate(model_dir, seed_text, seed_file, stats, train_text, **values):
    """Generate text with a trained model, streamed to stdout as it is made.

    Prints the seed and its continuation; with --num-samples N, sample 1
    streams and the others follow it. Seed characters the model never saw are
    read as unknown, with a warning on stderr.

    \b
        nlpkit generate --seed "ROMEO:" --length 500 --temperature 0.8 --top-p 0.95 --rng-seed 1
    """
    seed = read_seed(seed_text, seed_file)
    options = SamplingOptions(**values).validate()
    generator = task_of_run(model_dir).load_generator(model_dir)
    training_text = decode_utf8(open_bytes(train_text), train_text) if train_text else None
    generation = generator.generate(seed, **dataclasses.asdict(options))
    if generation.truncated:
        click.echo(f"nlpkit: warning: the seed is {len(seed):,} characters long; generation reads only its "
                   f"last {generator.max_length:,}, the model's maximum length.", err=True)
    if generation.unknown_characters:
        shown = " ".join(map(repr, generation.unknown_characters))
        click.echo(f"nlpkit: warning: seed characters the model never saw, read as unknown: {shown}", err=True)
    echo_stream(streamed_samples(generation, seed, options.num_samples))
    if stats:
        measured = generator.stats(generation.samples, training_text)
        echo_stream(["\n" + format_stats(measured, len(generation.samples)) + "\n"])


@main.command(name="translate")
@click.argument("texts", nargs=-1)
@click.option("--model", "model_dir", default=os.path.join("models", "translate"), show_default=True,
              help="Run folder of a trained translate model.")
@click.option("--file", type=click.Path(dir_okay=False), help="Read one sentence per line from this file.")
@click.option("--beam", type=int, default=1, show_default=True, help="Beam width: 1 decodes greedily.")
@click.option("--n-best", type=int, default=1, show_default=True,
              help="Translations per sentence, best first, with their scores (at most --beam).")
@click.option("--max-length", type=int, default=None,
              help="Most tokens per translation. Default: the model's --max-length.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per sentence.")
@click.option("--attention-plot", type=click.Path(dir_okay=False),
              help="Save the first sentence's attention (source words x output words) as a PNG heatmap.")
def translate_command(texts, model_dir, file, beam, n_best, max_length, as_json, attention_plot):
    """Translate sentences with a trained model (`nlpkit train translate`).

    Sentences come from the arguments, else one per line from --file or stdin;
    they are translated in batches. Source words the model never saw, and
    sentences cut to the model's maximum length, are reported on stderr.

    \b
        nlpkit translate "I am cold." "Where is the station?"
        nlpkit translate --beam 5 --n-best 3 "I am cold."
        nlpkit translate --file sentences.txt --json
    """
    from nlpkit.tasks.translate import plot_attention

    inputs = read_inputs(texts, file)
    translator = all_tasks()["translate"].load(model_dir)
    results = translator.translate(inputs, beam=beam, max_length=max_length, n_best=n_best,
                                   attention=bool(attention_plot))
    if not as_json:  # JSON output lists each sentence's unknown words itself
        for number, result in enumerate(results, start=1):
            if result["unknown_words"]:
                shown = " ".join(map(repr, result["unknown_words"]))
                click.echo(f"nlpkit: warning: sentence {number}: words the model never saw, read as unknown: "
                           f"{shown}", err=True)
    warn_truncated(results, translator.max_length, all_tasks()["translate"].truncation)
    if attention_plot:
        plot_attention(results[0]["attention"], attention_plot, title=inputs[0][:60])
    if as_json:
        echo_lines(json.dumps({"text": text, **{k: v for k, v in result.items() if k != "attention"}},
                              ensure_ascii=False) for text, result in zip(inputs, results))
    else:
        echo_lines(all_tasks()["translate"].format_prediction(text, result) for text, result in zip(inputs, results))


def warn_truncated(results, max_length, how):
    """One stderr line counting the texts that were cut to the model's maximum length."""
    truncated = sum(result.get("truncated", False) for result in results)
    if truncated:
        click.echo(f"nlpkit: warning: {truncated} text(s) longer than {max_length} tokens were cut to "
                   f"{max_length} ({how}).", err=True)


def make_train_command(task):
    @train.command(name=task.name, help=f"{task.summary}\n\nWrites models/{task.name} unless --out is given.")
    @dataclass_options(task.TrainOptions)
    def command(**values):
        options = task.TrainOptions(**values)
        finished = None if options.force else task.finished_run(options)
        if finished is not None:
            click.echo(f"{finished}: already trained with these options and data; nothing to do "
                       "(--force trains again).")
            return
        result = task.train(options)
        click.echo(f"\nheld-out validation metrics ({result['folder']}):")
        click.echo(task.format_metrics(result["validation"]))

    return command


def make_predict_command(task):
    @predict.command(name=task.name, help=f"{task.summary}\n\nPrints one result per text.")
    @click.argument("texts", nargs=-1)
    @click.option("--model", "model_dir", default=default_model_dir(task), show_default=True, help="Run folder of a trained model.")
    @click.option("--file", type=click.Path(dir_okay=False), help="Read one text per line from this file.")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object per text.")
    @dataclass_options(task.PredictOptions)
    def command(texts, model_dir, file, as_json, **values):
        inputs = read_inputs(texts, file)
        predictor = task.load(model_dir)
        results = predictor.predict(inputs, **values)
        warn_truncated(results, predictor.max_length, task.truncation)
        echo_lines(json.dumps({"text": text, **result}, ensure_ascii=False) if as_json
                   else task.format_prediction(text, result) for text, result in zip(inputs, results))

    return command


def make_evaluate_command(task):
    @evaluate.command(name=task.name, help=f"Measure a trained {task.name} model on held-out data.")
    @click.option("--model", "model_dir", default=default_model_dir(task), show_default=True, help="Run folder of a trained model.")
    @click.option("--data", required=True, help="Data file (or tfds:NAME[:SPLIT]) to evaluate on.")
    @dataclass_options(task.EvaluateOptions)
    @click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
    def command(model_dir, data, as_json, **values):
        predictor = task.load(model_dir)
        report = task.evaluate(predictor, data, **values)
        click.echo(json.dumps(report, indent=2) if as_json else task.format_metrics(report))

    return command


for _task in all_tasks().values():
    make_train_command(_task)
    make_predict_command(_task)
    make_evaluate_command(_task)


@main.command()
@click.argument("model_dir", metavar="RUN")
def vocabulary(model_dir):
    """Print a trained run's vocabulary: one token per line, UTF-8, from id 2 on.

    Ids 0 and 1 (padding and unknown) are left out; a newline, carriage return
    or backslash inside a token is written \\n, \\r or \\\\. The file trains
    another run on the same tokens with --vocabulary.

    \b
        nlpkit vocabulary models/sentiment > vocab.txt
        nlpkit train sentiment --vocabulary vocab.txt --out models/same-tokens
    """
    task = task_of_run(model_dir)
    model, _ = runs.load_run(model_dir, task.name)
    tokens = runs.vectorizer_of(model).get_vocabulary()[2:]
    echo_stream([vocabulary_lines(tokens)])


if __name__ == "__main__":
    main()
