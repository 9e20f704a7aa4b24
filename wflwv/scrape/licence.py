"""The licence gate: an explicit list of accepted Creative Commons licences, and the evidence of each decision.

A licence string is accepted only when, once normalised (case, punctuation, a version such as "4.0",
"International", "license", YouTube's "(reuse allowed)"), it is exactly one of the known spellings
of an accepted licence. Anything else is refused: another licence, a bare "Creative Commons", a
negation ("not creative commons"), free text around a licence.

The evidence is where the licence came from, in this order:
    metadata  the `license` field of the video's metadata (YouTube's licence row)
    list      the licence column of the user's URL list, when the metadata has none
    search    the candidate came from a search with YouTube's Creative Commons filter, which only
              returns CC BY videos; counted only when the user opts in (trust_search), since the
              metadata row is missing exactly when YouTube did not say
"""

import itertools
import re
from dataclasses import dataclass

# Every licence the gate knows, by its short name: the licence elements and how long names spell them.
ELEMENTS = {"by": ("attribution",), "sa": ("sharealike", "share alike"), "nc": ("noncommercial", "non commercial"), "nd": ("noderivatives", "noderivs", "no derivatives")}
KNOWN = {"CC BY": ("by",), "CC BY-SA": ("by", "sa"), "CC BY-NC": ("by", "nc"), "CC BY-NC-SA": ("by", "nc", "sa"), "CC BY-ND": ("by", "nd"), "CC BY-NC-ND": ("by", "nc", "nd")}
ZERO_SPELLINGS = ("cc0", "cc 0", "cc zero", "creative commons zero", "creative commons cc0", "cc0 public domain dedication")
DEFAULT_ACCEPTED = ("CC BY", "CC BY-SA", "CC0")
SEARCH_LICENCE = "CC BY"  # YouTube's Creative Commons filter finds CC BY videos, the only CC licence it offers
SUFFIX = re.compile(r"\s+(licen[cs]e|international|unported|generic|universal|deed|v?\d+(\.\d+)*)$")


def spellings() -> dict[str, str]:
    """Normalised spelling -> short name, for every known licence."""
    table = dict.fromkeys(ZERO_SPELLINGS, "CC0")
    for name, elements in KNOWN.items():
        table["cc " + " ".join(elements)] = name
        for words in itertools.product(*(ELEMENTS[element] for element in elements)):
            table["creative commons " + " ".join(words)] = name
    return table


SPELLINGS = spellings()


def normalise(licence: str) -> str:
    text = re.sub(r"[\s_/-]+", " ", licence.lower().replace("(reuse allowed)", "")).strip()
    while (shorter := SUFFIX.sub("", text)) != text:
        text = shorter
    return text


def licence_name(licence: str) -> str | None:
    """The short name ("CC BY-SA") of a known Creative Commons licence string, else None."""
    return SPELLINGS.get(normalise(licence))


@dataclass(frozen=True)
class LicencePolicy:
    allow_nc: bool = False  # accept NonCommercial licences too
    allow_nd: bool = False  # accept NoDerivatives licences too
    trust_search: bool = False  # with no licence anywhere, a Creative Commons search result counts as CC BY
    also_accept: tuple[str, ...] = ()  # other licences accepted by exact name, as a known source's ("MIT": wflwv.real's videos)

    def accepted(self) -> set[str]:
        extra = {name for name, elements in KNOWN.items() if ("nc" not in elements or self.allow_nc) and ("nd" not in elements or self.allow_nd)}
        return set(DEFAULT_ACCEPTED) | extra


@dataclass(frozen=True)
class LicenceDecision:
    licence: str | None  # the licence string decided on
    evidence: str | None  # metadata, list or search; None when there was none
    refusal: str | None  # why the candidate is refused; None when accepted


def decide(metadata_licence: str | None, list_licence: str | None, query: str | None, policy: LicencePolicy) -> LicenceDecision:
    """Accept or refuse a candidate from the first evidence there is (see the module's docstring)."""
    if metadata_licence:
        licence, evidence = metadata_licence, "metadata"
    elif list_licence:
        licence, evidence = list_licence, "list"
    elif query is not None and policy.trust_search:
        licence, evidence = SEARCH_LICENCE, "search"
    else:
        return LicenceDecision(None, None, "no licence in the metadata")
    if normalise(licence) in {normalise(other) for other in policy.also_accept}:
        return LicenceDecision(licence, evidence, None)
    name = licence_name(licence)
    if name is None:
        return LicenceDecision(licence, evidence, f"licence {licence!r} is not an accepted Creative Commons licence")
    if name not in policy.accepted():
        return LicenceDecision(licence, evidence, f"licence {licence!r} ({name}) is not accepted: NonCommercial needs --allow-nc, NoDerivatives --allow-nd")
    return LicenceDecision(licence, evidence, None)
