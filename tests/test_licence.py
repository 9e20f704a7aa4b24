"""The licence gate: every accepted and refused licence string, the NC/ND options, and each kind of evidence
(the metadata's licence row, the user's list, the Creative Commons search) over the loopback site."""

import json

import pytest
from test_scrape import FAST, ids_file, no_proxies, site, site_folder  # noqa: F401 (fixtures)

from wflwv.scrape import Candidate, FetchSettings, ScrapeSettings, read_ids, read_urls, scrape, summary
from wflwv.scrape.licence import LicenceDecision, LicencePolicy, decide, licence_name

ACCEPTED = {
    "Creative Commons Attribution license (reuse allowed)": "CC BY",  # YouTube's licence row
    "CC BY": "CC BY",
    "CC BY 4.0": "CC BY",
    "cc-by": "CC BY",
    "CC-BY-3.0": "CC BY",
    "Creative Commons Attribution 4.0 International": "CC BY",
    "Creative Commons Attribution 3.0": "CC BY",  # Wikimedia's
    "CC BY-SA 4.0": "CC BY-SA",
    "cc-by-sa": "CC BY-SA",
    "Creative Commons Attribution-ShareAlike 4.0 International License": "CC BY-SA",
    "Creative Commons Attribution Share Alike": "CC BY-SA",
    "CC0": "CC0",
    "CC0 1.0": "CC0",
    "cc0-1.0": "CC0",
    "Creative Commons Zero": "CC0",
    "CC0 1.0 Universal": "CC0",
}
NEEDS_OPTION = {
    "CC BY-NC 4.0": ("nc",),
    "Creative Commons Attribution-NonCommercial 4.0 International": ("nc",),
    "cc-by-nc-sa": ("nc",),
    "Creative Commons Attribution-NonCommercial-ShareAlike": ("nc",),
    "CC BY-ND 4.0": ("nd",),
    "Creative Commons Attribution-NoDerivatives 4.0": ("nd",),
    "CC BY-NC-ND 4.0": ("nc", "nd"),
    "Creative Commons Attribution-NonCommercial-NoDerivs": ("nc", "nd"),
}
REFUSED = [
    "Standard YouTube License",
    "not creative commons",
    "Not CC BY",
    "non-creative commons",
    "no cc-by",
    "Creative Commons",  # which one?
    "CC",
    "CC BY-SA? no",
    "CC BY but not for reuse",
    "All rights reserved",
    "Public domain",
    "GPL-3.0",
    "MIT",
    "creative commons attribution license (reuse not allowed)",
    "CC BY-XY",
]


@pytest.mark.parametrize("licence", ACCEPTED)
def test_accepted_licences_by_default(licence):
    assert licence_name(licence) == ACCEPTED[licence]
    assert decide(licence, None, None, LicencePolicy()).refusal is None


@pytest.mark.parametrize("licence", REFUSED)
def test_everything_else_is_refused_negations_included(licence):
    decision = decide(licence, None, None, LicencePolicy(allow_nc=True, allow_nd=True, trust_search=True))
    assert decision.refusal == f"licence {licence!r} is not an accepted Creative Commons licence"


@pytest.mark.parametrize("licence", NEEDS_OPTION)
def test_nc_and_nd_licences_only_by_option(licence):
    needs = NEEDS_OPTION[licence]
    assert "is not accepted: NonCommercial needs --allow-nc" in decide(licence, None, None, LicencePolicy()).refusal
    for nc, nd in [(True, False), (False, True), (True, True)]:
        allowed = ("nc" not in needs or nc) and ("nd" not in needs or nd)
        assert (decide(licence, None, None, LicencePolicy(allow_nc=nc, allow_nd=nd)).refusal is None) == allowed


def test_the_evidence_is_the_first_there_is():
    trusting = LicencePolicy(trust_search=True)
    assert decide("CC BY", "Standard YouTube License", "faces", trusting).evidence == "metadata"
    assert decide("Standard YouTube License", "CC BY", "faces", trusting).refusal  # the metadata wins over the list
    assert decide(None, "CC BY 4.0", "faces", trusting).evidence == "list"
    assert decide(None, None, "faces", trusting) == LicenceDecision("CC BY", "search", None)
    assert decide(None, None, "faces", LicencePolicy()).refusal == "no licence in the metadata"
    assert decide(None, None, None, trusting).refusal == "no licence in the metadata"  # not from a search


def test_each_kind_of_evidence_is_recorded_in_the_manifest(site, tmp_path):
    """Over loopback: the metadata's licence row (accepted and a negation refused), the list's column, and a
    Creative Commons search result without a licence row, counted only when the user opts in."""
    info = tmp_path / "info"
    info.mkdir()
    for name, licence in {"coded": "CC BY 4.0", "closed": "not creative commons"}.items():
        (info / f"{name}.info.json").write_text(json.dumps(site.info_dict(name, licence=licence)))
    (info / "searched.info.json").write_text(json.dumps(site.info_dict("coded", video_id="searched", licence=None)))
    urls = tmp_path / "urls.csv"
    urls.write_text(f"id,url,licence,start,end\nlisted,{site.url('coded')},CC BY-SA 4.0,0,4\n")
    candidates = read_ids(ids_file(tmp_path, ["coded 0 4", "closed 0 4"]), info) + read_urls(urls)
    candidates.append(Candidate("searched", "searched", info_json=info / "searched.info.json", window=(0, 4), query="faces"))

    manifest = scrape(tmp_path / "cautious", candidates, FAST).set_index("id")
    assert manifest.loc["searched", "status"] == "refused" and manifest.loc["searched", "reason"] == "no licence in the metadata"
    assert summary(manifest.reset_index()).endswith("licence from the search filter alone: 0")

    trusting = ScrapeSettings(FetchSettings(**{**FAST.fetch.__dict__, "trust_cc_search": True}))
    manifest = scrape(tmp_path / "trusting", candidates, trusting).set_index("id")
    assert manifest.loc[["coded", "listed", "searched"], "status"].tolist() == ["done"] * 3
    assert manifest["licence_evidence"].to_dict() == {"coded": "metadata", "closed": "metadata", "listed": "list", "searched": "search"}
    assert manifest["licence"].to_dict() == {"coded": "CC BY 4.0", "closed": "not creative commons", "listed": "CC BY-SA 4.0", "searched": "CC BY"}
    assert manifest.loc["closed", "status"] == "refused" and site.requests["closed"] == 0
    assert summary(manifest.reset_index()) == "done 3, refused 1, skipped 0, failed 0; licence from the search filter alone: 1"
