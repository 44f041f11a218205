"""Concurrent requests to one run, merged into batches for its one model thread.

A model answers a batch of 32 texts in little more time than one text, so the
server does not call it once per request. Requests wait in a queue; the run's
loop takes the first, waits up to `wait_seconds` for others, and merges every
waiting request with the same predict arguments (up to `batch_texts` texts)
into one call of the predictor. Each request gets its own answers back.

Every call of the run's model (batches, and the chunks of a streamed
generation) runs on the run's one worker thread: a Keras model is never
called from two threads at once, and the event loop stays free to accept
requests meanwhile. A merged batch that fails (one text the model refuses) is
answered request by request, so one bad request never fails another.
"""

import asyncio
import concurrent.futures
import dataclasses

from nlpkit.errors import NlpkitError


@dataclasses.dataclass
class Pending:
    request: object
    answer: asyncio.Future


@dataclasses.dataclass
class BatchStats:
    """What a run has answered: requests, texts, and the model calls (batches) they took."""

    requests: int = 0
    texts: int = 0
    batches: int = 0
    largest_batch: int = 0

    def counted(self, requests, texts):
        self.requests += requests
        self.texts += texts
        self.batches += 1
        self.largest_batch = max(self.largest_batch, texts)


class RunBatcher:
    """The queue, the worker thread and the batching loop of one served run.

    `predict(texts, **arguments)` is the predictor's; requests are `nlpkit.serving.requests.Request`s.
    """

    def __init__(self, predict, batch_texts=256, wait_seconds=0.002):
        self.predict = predict
        self.batch_texts = batch_texts
        self.wait_seconds = wait_seconds
        self.queue = asyncio.Queue()
        self.thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="nlpkit-model")
        self.stats = BatchStats()
        self.task = None

    def start(self):
        self.task = asyncio.get_running_loop().create_task(self.loop())

    async def stop(self):
        if self.task is not None:
            self.task.cancel()
        self.thread.shutdown(wait=False, cancel_futures=True)

    async def answer(self, request):
        """The predictor's results for `request.texts`, once its batch has run (raises what predict raised)."""
        pending = Pending(request, asyncio.get_running_loop().create_future())
        await self.queue.put(pending)
        return await pending.answer

    async def in_thread(self, function, *args):
        """`function(*args)` on the run's worker thread (for calls that are not batched: a streamed generation)."""
        return await asyncio.get_running_loop().run_in_executor(self.thread, function, *args)

    async def loop(self):
        while True:
            first = await self.queue.get()
            if self.wait_seconds and first.request.mergeable:
                await asyncio.sleep(self.wait_seconds)
            for batch in self.batches(first):
                await self.run(batch)

    def batches(self, first):
        """`first` and every request waiting now, grouped into batches: mergeable requests with the same
        arguments share one, up to `batch_texts` texts; any other request is a batch of its own."""
        waiting = [first]
        while not self.queue.empty():
            waiting.append(self.queue.get_nowait())
        groups = []
        open_groups = {}
        for pending in waiting:
            request = pending.request
            key = request.key() if request.mergeable else None
            group = open_groups.get(key)
            if group is None or sum(len(p.request.texts) for p in group) + len(request.texts) > self.batch_texts:
                group = []
                groups.append(group)
                if key is not None:
                    open_groups[key] = group
            group.append(pending)
        return groups

    async def run(self, batch):
        """Answers every request of `batch` (or fails it): nothing a model does stops the loop."""
        texts = [text for pending in batch for text in pending.request.texts]
        try:
            results = await self.in_thread(lambda: self.predict(texts, **batch[0].request.arguments))
        except NlpkitError as error:
            if len(batch) > 1:  # answer each request alone, so the error reaches only the request that caused it
                for pending in batch:
                    await self.run([pending])
            else:
                settle(batch[0], error=error)
            return
        except Exception as error:  # a 500 for these clients (the app logs it), never raised in the loop
            for pending in batch:
                settle(pending, error=error)
            return
        self.stats.counted(len(batch), len(texts))
        start = 0
        for pending in batch:
            count = len(pending.request.texts)
            settle(pending, results=results[start:start + count])
            start += count


def settle(pending, results=None, error=None):
    """Gives a waiting request its answer, unless its client went away (which cancelled the future)."""
    if pending.answer.done():
        return
    if error is not None:
        pending.answer.set_exception(error)
    else:
        pending.answer.set_result(results)
