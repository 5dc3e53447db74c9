"""The reader: question types, index-time candidates, span trimming, the fitted weights."""

from __future__ import annotations

import numpy as np
import pytest
from spacy.tokens import Doc

from qa.analysis import Analysis, _bare_names, _defined_names, analyse, load_pipeline
from qa.reading import (
    CONFIDENCE_FEATURES,
    SPAN_FEATURES,
    Evidence,
    LinearModel,
    ReaderWeights,
    _acronyms,
    _bounds,
    _coordinated,
    _root,
    _tree_distances,
    _trim,
    _wh_attachment,
    _with_units,
    _years,
    asked_role,
    candidates,
    question_type,
    read,
)
from scripts.fit_reader import Example, choose_threshold, fit_span

STORY = (
    "Flood crews in Norrbridge moved 320 households out of Eastmill on Monday. "
    "The rescue was led by Ingrid Halvorsen, the mayor, who called it the longest night in "
    "a decade. \"We have never seen the river move this fast,\" said Lukas Brandvold, the "
    "station commander. \"Six boats were out all night,\" he added. Water reached the cities "
    "of Ostby and Lund by Tuesday, a spokesman for the Wend Water Authority said. "
    "Marta Lindqvist was elected chair of the flood board on Friday, unseating Olaf Berg."
)


@pytest.fixture(scope="module")
def evidence(encoder) -> list[Evidence]:
    analysis = next(analyse([STORY]))
    vectors = encoder.encode([STORY[s:e] for s, e in analysis.sentences])
    return [Evidence(0, len(STORY), 12.0, analysis, vectors, STORY)]


@pytest.mark.parametrize("question, label, speaker", [
    ("How many households were moved?", "CARDINAL", False),
    ("What was the target percentage of homes reached?", "PERCENT", False),
    ("When did the river burst its banks?", "DATE", False),
    ("In which city did he speak?", "GPE", False),
    ("Who warned that the river was rising?", "PERSON", True),
    ("Who led the rescue?", "PERSON", False),
    ("What German poet wrote the hymn?", "PERSON", False),
    ("Which spokesman announced the closure?", "PERSON", False),
    ("In what year did Doctor Who leave Gallifrey?", "DATE", False),
])
def test_question_type_from_the_wh_phrase(question, label, speaker):
    kind = question_type(question)
    assert max(kind.labels, key=kind.labels.get) == label
    assert kind.asks_speaker is speaker


@pytest.mark.parametrize("question, role", [
    ("Who was elected chair of the board?", ("elect", "subject")),
    ("What did the storm destroy?", ("destr", "object")),
    ("Which company owns the network?", ("owns", "subject")),
    ("When did the river rise?", None),
])
def test_asked_role_is_the_wh_words_relation_to_its_verb(question, role):
    assert asked_role(question) == role


def test_a_who_inside_a_name_is_not_the_wh_word():
    assert question_type("How often does Doctor Who travel alone?").labels == {}
    assert "PERSON" in question_type("Who played Doctor Who on stage?").labels


def test_which_noun_questions_name_their_focus():
    assert question_type("Which company owns the network?").focus == "compa"
    assert question_type("How many boats were out?").focus == "boats"
    assert question_type("What is the capital?").focus is None


def test_trim_drops_the_questions_own_words_and_dangling_words_but_keeps_names():
    text = "told the AFP news agency that 32.9% voted for David G. Booth in Ostby"
    start = text.index("the AFP")
    asked = {"which", "news", "agency", "booth", "ostby"}
    s, e = _trim(text, start, start + len("the AFP news agency"), "NP", asked)
    assert text[s:e] == "the AFP"
    s, e = _trim(text, start + 4, start + len("the AFP news agency"), "ORG", asked)
    assert text[s:e] == "AFP"  # an entity's lowercase edge words are the question's too
    start = text.index("32.9%")
    assert text[slice(*_trim(text, start - 1, start + 5, "PERCENT", {"voted"}))] == "32.9%"
    start = text.index("David")
    assert text[slice(*_trim(text, start, start + 14, "PERSON", asked))] == "David G. Booth"
    start = text.index("Booth in")
    assert text[slice(*_trim(text, start, len(text), "NP", asked))] == ""
    for owner in ("Lena Dahl's", "Lena Dahl’s", "Lena Dahl's)"):  # "whose theory?": the owner
        assert owner[slice(*_trim(owner, 0, len(owner), "PERSON", set()))] == "Lena Dahl"
    assert "O'Neil"[slice(*_trim("O'Neil", 0, 6, "PERSON", set()))] == "O'Neil"
    name, after = text.index("David"), text.index(" in Ostby")
    assert text[slice(*_trim(text, name, after + 3, "NP", set()))] == "David G. Booth"
    assert text[slice(*_trim(text, name - 4, after, "NP", set()))] == "for David G. Booth"
    assert text[slice(*_trim(text, name - 4, after, "NP", {"for"}))] == "for David G. Booth"


def test_a_year_question_gets_the_year_out_of_a_longer_date():
    text = "The bridge opened on 7 January 1943 and closed in 1990 by Ann, in the 1990s."
    spans = [(text.index(words), text.index(words) + len(words), label, "", "") for words, label
             in (("7 January 1943", "DATE"), ("1990", "DATE"), ("Ann", "PERSON"),
                 ("the 1990s", "DATE"))]
    assert [text[s:e] for s, e, *_ in _years(text, spans)] == ["1943", "1990", "Ann",
                                                               "the 1990s"]


def test_a_year_question_prefers_the_year_to_the_whole_date(encoder):
    text = "The Eastmill bridge opened on 7 January 1943 after four years of work."
    analysis = next(analyse([text]))
    evidence = [Evidence(0, len(text), 5.0, analysis,
                         encoder.encode([text[s:e] for s, e in analysis.sentences]), text)]
    question = "In what year did the Eastmill bridge open?"
    found = {c.key for c in candidates(question, encoder.encode_query(question), evidence)}
    assert "1943" in found and "7 january 1943" not in found
    assert read(question, encoder.encode_query(question), evidence, threshold=0.0).text == "1943"


def test_a_count_takes_its_currency_or_unit():
    text = "The council released 1.8 million euros and 40 boats over 12 km."
    spans = [(text.index(n), text.index(n) + len(n), "CARDINAL", "", "") for n in
             ("1.8 million", "40", "12")]
    assert [(text[s:e], label) for s, e, label, *_ in _with_units(text, spans)] == [
        ("1.8 million euros", "MONEY"), ("12 km", "QUANTITY")]


def test_the_acronym_of_a_name_in_the_question_is_not_an_answer():
    question = "Who leads the Wend Valley Water Authority?"
    assert "WVWA" in _acronyms(question)
    assert _acronyms("Who won?") == set()


def test_a_noun_the_question_names_is_kept_as_one_variant_of_the_span():
    text = "Crews used a blind plea and the AFP news agency."
    plea = (text.index("blind"), text.index(" and"), "NP")
    asked = {"what", "type", "of", "plea", "did", "crews", "use"}
    found = {text[s:e] for s, e in _bounds(text, plea, asked, {"plea"})}
    assert found == {"blind", "blind plea"}
    agency = (text.index("AFP"), len(text) - 1, "ORG")
    asked = {"which", "news", "agency"}
    assert {text[s:e] for s, e in _bounds(text, agency, asked, {"news"})} == {"AFP"}


def test_entities_of_one_kind_joined_by_and_make_one_answer():
    text = "Refugees went to Switzerland and the Netherlands, then to Lund or Oslo with Ann."
    def mention(words, label):
        start = text.index(words)
        return (start, start + len(words), label, "go", "pobj")
    spans = [mention("Switzerland", "GPE"), mention("Netherlands", "GPE"),
             mention("Lund", "GPE"), mention("Oslo", "GPE"), mention("Ann", "PERSON"),
             mention("Refugees", "NP")]
    joined = [text[s:e] for s, e, *_ in _coordinated(text, spans, set())]
    assert joined == ["Switzerland and the Netherlands", "Lund or Oslo"]
    # "who went to Lund and where else?": a list naming what the question names is no answer
    assert [text[s:e] for s, e, *_ in _coordinated(text, spans, {"lund"})] == [
        "Switzerland and the Netherlands"]
    text = "Boats came from Ostby, Lund and Eastmill, and Ann, Kim and Cy met them."
    spans = [mention(words, "GPE") for words in ("Ostby", "Lund", "Eastmill")]
    spans += [mention(words, "PERSON") for words in ("Ann", "Kim", "Cy")]
    joined = [text[s:e] for s, e, *_ in _coordinated(text, spans, set())]
    assert joined == ["Ostby, Lund and Eastmill", "Lund and Eastmill", "Ann, Kim and Cy",
                      "Kim and Cy"]  # "Eastmill, and Ann": two lists, not one


def test_analysis_finds_phrases_speakers_and_he_added(evidence):
    analysis = evidence[0].analysis
    phrases = {STORY[s:e] for s, e, label in analysis.mentions if label == "NP"}
    assert "cities of Ostby and Lund" in phrases  # a noun phrase with what hangs off it
    speakers = {STORY[s:e] for s, e in analysis.speakers.values()}
    assert "Lukas Brandvold" in speakers
    added = next(n for n, (s, e) in enumerate(analysis.sentences) if "he added" in STORY[s:e])
    assert STORY[slice(*analysis.speakers[added])] == "Lukas Brandvold"
    assert len(evidence[0].sentence_vectors) == len(analysis.sentences)
    roles = {STORY[s:e]: role for (s, e, _), role in zip(analysis.mentions, analysis.roles,
                                                          strict=True)}
    assert roles["Marta Lindqvist"] == ("elected", "nsubjpass")
    assert roles["Olaf Berg"] == ("unseating", "dobj")


def test_how_many_is_answered_by_the_count_without_the_counted_noun(encoder, evidence):
    question = "How many boats were out all night?"
    assert question_type(question).counts and question_type(question).focus == "boats"
    found = {c.key for c in candidates(question, encoder.encode_query(question), evidence)}
    assert "six" in found and "six boats" not in found


def test_tree_distance_counts_dependency_edges_from_the_questions_words():
    text = "Ward recovered the ball, and Miller later told reporters about the game."
    analysis = next(analyse([text]))
    tokens = analysis.tokens
    assert [text[s:e] for s, e, _ in tokens[:2]] == ["Ward", "recovered"]
    assert tokens[0][2] == 1  # "Ward" hangs from "recovered"
    assert Analysis.from_json(analysis.to_json()).tokens == tokens
    distances = _tree_distances(text, tokens, 0, len(tokens), {"recov", "ball"})
    assert set(distances) == {"recov", "ball"}
    starts = [s for s, _, _ in tokens]
    ward = _root(tokens, starts, 0, len(tokens), 0, 4)
    miller = _root(tokens, starts, 0, len(tokens), text.index("Miller"), text.index(" later"))
    assert distances["recov"][ward] == 1 < distances["recov"][miller]
    assert _wh_attachment("Who recovered the ball?") == ("recov", "subject")


def test_analysis_marks_the_agent_of_a_passive_verb():
    text = "The dam plan was backed by Norrbridge and opposed by the Wend Water Authority."
    analysis = next(analyse([text]))
    roles = {text[s:e]: role for (s, e, _), role in zip(analysis.mentions, analysis.roles,
                                                         strict=True)}
    assert roles["Norrbridge"] == ("backed", "agent")  # "which town backed it?": its subject


def test_a_name_defined_by_its_acronym_is_one_name_and_so_is_the_acronym():
    text = "Ostby joined the Wend Valley Water Authority (WVWA) in May."
    analysis = next(analyse([text]))
    labels = {text[s:e]: label for s, e, label in analysis.mentions}
    assert labels["Wend Valley Water Authority"] == labels["WVWA"] != "NP"
    assert not list(_defined_names(load_pipeline()("Prices in Ostby (CPI) rose.")))


def test_proper_nouns_outside_entities_and_phrases_are_candidates():
    # The parse the small pipeline gives 'calling NWA one of the worst' in some sentences:
    # the name hangs off "one" as a compound, so neither NER nor the noun chunks hold it.
    words = ["Crews", "kept", "calling", "NWA", "one", "of", "the", "worst"]
    doc = Doc(load_pipeline().vocab, words=words,
              pos=["NOUN", "VERB", "VERB", "PROPN", "NUM", "ADP", "DET", "ADJ"],
              deps=["nsubj", "ROOT", "xcomp", "compound", "dobj", "prep", "det", "pobj"],
              heads=[1, 1, 1, 4, 2, 4, 7, 5])
    names = [(doc.text[s:e], root.text) for s, e, root in _bare_names(doc)]
    assert names == [("NWA", "NWA")]


@pytest.mark.parametrize("question, answer", [
    ("Who led the rescue?", "Ingrid Halvorsen"),
    ("How many households were moved out of Eastmill?", "320"),
    ("Who said six boats were out all night?", "Lukas Brandvold"),
    ("Who was elected chair of the flood board?", "Marta Lindqvist"),
    ("How many boats were out all night?", "Six"),  # a number word, not a stop word
])
def test_read_finds_the_answer_with_exact_offsets(encoder, evidence, question, answer):
    reading = read(question, encoder.encode_query(question), evidence, threshold=0.0)
    assert reading.text == answer
    assert STORY[reading.start:reading.end] == answer and reading.passage == 0
    assert 0.0 < reading.confidence < 1.0
    assert reading.candidates[0][0] == answer


def test_candidates_never_repeat_the_question(encoder, evidence):
    question = "Who was the station commander?"
    found = candidates(question, encoder.encode_query(question), evidence)
    spans = {STORY[c.start:c.end].lower() for c in found}
    assert spans and "station commander" not in spans and "the station commander" not in spans
    assert all(set(SPAN_FEATURES) <= set(c.features) for c in found)


def test_read_abstains_below_the_threshold(encoder, evidence):
    question = "Who won the football cup?"
    reading = read(question, encoder.encode_query(question), evidence, threshold=1.0)
    assert reading.text is None and reading.candidates


def test_shipped_weights_use_exactly_the_features_the_reader_computes():
    weights = ReaderWeights.load()
    assert weights.span.features == SPAN_FEATURES
    assert weights.confidence.features == CONFIDENCE_FEATURES
    assert 0.0 < weights.threshold < 1.0


def test_fit_span_learns_which_feature_marks_the_right_candidate():
    rng = np.random.default_rng(0)
    examples = []
    for n in range(40):
        rows = [{f: float(rng.random()) for f in SPAN_FEATURES} for _ in range(6)]
        right = int(rng.integers(6))
        rows[right]["type_fit"] = 2.0  # only the right span fits the type
        examples.append(Example(str(n), True, rows, np.arange(6) == right))
    model = fit_span(examples)
    assert model.weights[SPAN_FEATURES.index("type_fit")] == max(model.weights)
    assert all(int(np.argmax(model.scores(e.features))) == int(np.argmax(e.correct))
               for e in examples)


def test_threshold_keeps_nine_tenths_of_the_right_answers():
    confidence = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.3, 0.2])
    right = np.array([True] * 10 + [False, False])
    answerable = np.array([True] * 10 + [False, False])
    # 9 of the 10 right answers have confidence >= 0.1; the highest such threshold is 0.1
    assert choose_threshold(confidence, right, answerable) == pytest.approx(0.1)


def test_linear_model_round_trips():
    model = LinearModel(("a", "b"), np.array([0.5, -1.0]), 0.25)
    again = LinearModel.from_dict(model.to_dict())
    assert again.scores([{"a": 2.0, "b": 1.0}])[0] == pytest.approx(0.25)
