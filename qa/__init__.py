"""ArticleQA: articles in, cited answers out, offline."""

from qa.api import ArticleQA
from qa.articles import Article
from qa.backends.manifest import IndexMismatch
from qa.chunking import ChunkSettings
from qa.reader import NeuralReader, Reader, Reading
from qa.results import Answer, IngestReport, Passage

__all__ = ["Answer", "Article", "ArticleQA", "ChunkSettings", "IndexMismatch", "IngestReport",
           "NeuralReader", "Passage", "Reader", "Reading"]
