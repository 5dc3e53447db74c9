"""Text to vectors to nearest neighbours; knows nothing of articles."""

from embeddings.encoder import DEFAULT_MODEL, Encoder, ModelError
from embeddings.index import VectorIndex

__all__ = ["DEFAULT_MODEL", "Encoder", "ModelError", "VectorIndex"]
