"""Each task's HTTP request: `{"texts": [...], ...its predict options}`, as a pydantic model.

The model is made from the task's `PredictOptions`, so a request takes the
options `nlpkit predict TASK` takes, under their Python names (`top_k`, not
`--top-k`), with the same defaults, and `PredictOptions.validate()` checks
them exactly as the command line does. Options marked `local` (they name a
file, such as --attention-plot) are left out: a client may not reach the
server's files. A task's `http_arguments` add what only a client needs (the
attention weights behind the page's heatmap). Unknown fields are refused.
"""

import dataclasses
import json
from typing import Optional

import pydantic

from nlpkit.config import OptionError
from nlpkit.errors import NlpkitError
from nlpkit.text.tokenization import check_texts


class RequestError(Exception):
    """A request that cannot be answered as given: `status` 400 (not JSON) or 422 (not a valid request)."""

    def __init__(self, message, status=422, field=None):
        super().__init__(message)
        self.status = status
        self.field = field

    def body(self):
        return {"error": str(self), **({"field": self.field} if self.field else {})}


def served_option_fields(task):
    """The task's predict option fields a client may set (every one not marked `local`)."""
    return [field for field in dataclasses.fields(task.PredictOptions) if not field.metadata.get("local")]


def request_model(task):
    """The pydantic model of a request to a run of `task`."""
    fields = {"texts": (list[str], pydantic.Field(description=task.input_hint))}
    for field in served_option_fields(task):
        kind = Optional[field.type] if field.default is None else field.type
        fields[field.name] = (kind, pydantic.Field(field.default, description=field.metadata.get("help", "")))
    for name, (kind, default, description) in task.http_arguments.items():
        fields[name] = (kind, pydantic.Field(default, description=description))
    return pydantic.create_model(f"{task.name.title().replace('-', '')}Request",
                                 __config__=pydantic.ConfigDict(extra="forbid"), **fields)


@dataclasses.dataclass
class Request:
    """A checked request: its texts, the predictor's keyword arguments, and whether it may share a batch."""

    texts: list
    arguments: dict
    mergeable: bool

    def key(self):
        """Requests with equal keys may share one model call."""
        return json.dumps(self.arguments, sort_keys=True)


def parse_json(body):
    """The JSON object of a request body (RequestError 400 if it is not one)."""
    try:
        value = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise RequestError(f"the body is not UTF-8 (byte {error.start + 1})", status=400) from None
    except json.JSONDecodeError as error:
        raise RequestError(f"the body is not JSON: {error.msg} at line {error.lineno} column {error.colno}",
                           status=400) from None
    if not isinstance(value, dict):
        raise RequestError(f"the body must be a JSON object with \"texts\", not {type(value).__name__}",
                           status=400)
    return value


def parse_request(task, model, body, limits):
    """Checks a request body for a run of `task` (`model`: its `request_model`) against `limits` and the task's
    own option checks; returns a `Request`, or raises RequestError / LimitError."""
    limits.check_body_size(len(body))
    try:
        values = model.model_validate(parse_json(body)).model_dump()
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise RequestError(f"{where}: {first['msg']}", field=where) from None
    texts = values.pop("texts")
    limits.check_texts(texts)
    limits.check_output_length(values)
    extras = {name: values.pop(name) for name in task.http_arguments}
    try:
        options = task.PredictOptions(**values).validate()
        check_texts(texts)
    except OptionError as error:
        raise RequestError(error.render(f'"{error.name}"'), field=error.name) from None
    except NlpkitError as error:
        raise RequestError(str(error)) from None
    arguments = {**task.predict_arguments(options), **extras}
    # Seeded sampling gives text i the seed rng_seed + i: such a request runs alone, to give what predict gives.
    return Request(texts, arguments, mergeable=arguments.get("rng_seed") is None)

