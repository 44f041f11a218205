"""Generation: writing with a trained model, one compiled step at a time.

    sampling       causal language models: greedy, temperature, top-k, top-p (`generate`)
    search         encoder-decoders: batched greedy and beam search (`greedy_search`, `beam_search`)
    sample_stats   distinct-n, repetition rate, longest span copied from the training text
"""

from nlpkit.lazy import submodules_on_demand

__getattr__ = submodules_on_demand(__name__, ["sample_stats", "sampling", "search"])
