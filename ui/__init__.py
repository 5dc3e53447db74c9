"""The ArticleQA chat (Gradio) and HTTP API (FastAPI) on top of `qa.ArticleQA`."""
