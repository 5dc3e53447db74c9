"""ArticleQA: articles in, cited answers out, offline."""

from qa.api import Answer, ArticleQA, IngestReport, Passage
from qa.articles import Article
from qa.chunking import ChunkSettings
from qa.manifest import IndexMismatch
from qa.reader import NeuralReader, Reader, Reading

__all__ = ["Answer", "Article", "ArticleQA", "ChunkSettings", "IndexMismatch", "IngestReport",
           "NeuralReader", "Passage", "Reader", "Reading"]
