"""Generation: writing with a trained model, one compiled step at a time.

    sampling       causal language models: greedy, temperature, top-k, top-p (`generate`)
    search         encoder-decoders: batched greedy and beam search (`greedy_search`, `beam_search`)
    sample_stats   distinct-n, repetition rate, longest span copied from the training text
"""

from nlpkit.lazy import submodules_on_demand

# The widest beam `search.beam_search` takes. Here, not in `search`, so that checking a --beam option imports
# no Keras: an option's error stays fast, and TensorFlow then starts only through `runtime.backend.start`, quietly.
MAX_BEAM = 64

__getattr__ = submodules_on_demand(__name__, ["sample_stats", "sampling", "search"])
