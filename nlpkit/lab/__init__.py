"""Experiments across models and cells, one module (and one `nlpkit` command) each.

    compare     the same training run once per cell, side by side (`nlpkit compare TASK`)
    gradients   how far back the gradient of the loss reaches: the vanishing-gradient picture (`nlpkit gradients`)

Modules here import TensorFlow only inside their functions, so the command line can read their options
without starting it.
"""
