"""The error of the embedding layer (adapters, the HEAR contract, model files).

``embeddings`` imports nothing from ``gear``, so it has its own exception; the ``gear`` layer
re-raises an :class:`EmbeddingError` as :class:`gear.errors.EmbeddingError` (bad arguments,
missing model files) or :class:`gear.errors.SubmissionError` (a model broke the contract).
"""


class EmbeddingError(ValueError):
    """An argument of an adapter, or a model's files, are invalid. The message names the value and the fix."""
