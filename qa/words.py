"""Small English word lists for query terms and follow-up resolution, without an NLP library.

``STOP_WORDS`` are function words (articles, pronouns, auxiliaries, prepositions, conjunctions,
question words, common adverbs): they say nothing about what a passage is about, so BM25 and
the conversation's topic overlap ignore them. Numbers are kept ("four" can be an answer).
"""

from __future__ import annotations

import re

STOP_WORDS = frozenset("""
a about above across after afterwards again against all almost alone along already also
although always am among amongst an and another any anyhow anyone anything anyway anywhere are
around as at be became because become becomes becoming been before beforehand behind being
below beside besides between beyond both but by can cannot could did do does doing done down
during each either else elsewhere enough etc even ever every everyone everything everywhere
except few for former formerly from further had has have having he hence her here hereafter
hereby herein hers herself him himself his how however i if in indeed into is it its itself
just last latter latterly least less made make many may me meanwhile might mine more moreover
most mostly much must my myself namely neither never nevertheless next no nobody none noone nor
not nothing now nowhere of off often on once only onto or other others otherwise our ours
ourselves out over own per perhaps please put quite rather re really same see seem seemed
seeming seems several she should show side since so some somehow someone something sometime
sometimes somewhere still such take than that the their theirs them themselves then thence
there thereafter thereby therefore therein thereupon these they this those though through
throughout thru thus to together too toward towards under unless until up upon us used using
various very via was we well were what whatever when whence whenever where whereafter whereas
whereby wherein whereupon wherever whether which while whither who whoever whole whom whose why
will with within without would yet you your yours yourself yourselves
""".split())  # noqa: SIM905 (a word list reads better as text)

# Verbs that report speech: "Kerry said", "told reporters", "she warned".
REPORTING_VERBS = frozenset("""
    say says said tell tells told write writes wrote add adds added warn warns warned
    claim claims claimed state states stated insist insists insisted promise promises promised
    argue argues argued explain explains explained note notes noted announce announces announced
    declare declares declared confirm confirms confirmed admit admits admitted deny denies denied
    vow vows vowed pledge pledges pledged reply replies replied respond responds responded
    urge urges urged predict predicts predicted estimate estimates estimated describe describes
    described call calls called accuse accuses accused suggest suggests suggested report reports
    reported ask asks asked recall recalls recalled
""".split())  # noqa: SIM905

# Words that introduce a person ("Secretary of State John Kerry", "striker Dario Okonkwo").
TITLES = frozenset("""
mr mrs ms dr prof president secretary state minister prime chancellor general gen colonel mayor
councillor governor senator commander captain manager striker midfielder defender winger coach
chief officer spokesperson spokesman spokeswoman student professor director leader founder co-
founder executive chair chairman chairwoman king queen prince princess pope judge
""".split())  # noqa: SIM905

WORD = re.compile(r"[\w']+")


def content_words(text: str) -> list[str]:
    """The words of ``text`` (lower case) that are not stop words, in order."""
    return [w for w in WORD.findall(text.lower()) if w not in STOP_WORDS]


def term(token: str) -> str:
    """A token as a term: lower case, a possessive counted as its owner ("Zappa's": zappa)."""
    return token.lower().removesuffix("'s")


def term_tokens(text: str) -> list[tuple[str, str, int]]:
    """(term, token as written, token index) of each content term of ``text``."""
    found = []
    for index, match in enumerate(WORD.finditer(text)):
        word = term(match.group())
        if word and word not in STOP_WORDS:
            found.append((word, match.group(), index))
    return found


def terms(text: str) -> set[str]:
    """The content terms of ``text`` (what a rewrite adds is counted in these)."""
    return {word for word, _, _ in term_tokens(text)}
