"""`pfp monitor`: the production detector on live traffic and delayed labels.

    logs.py         the prediction log (CONTRACTS §3) and the delayed labels, read tolerantly and counted
    state.py        what was computed already (<PFP_HOME>/monitor/state.json): each window exactly once
    reference.py    the version's own predictions on its test split, the drift reference (computed once, cached)
    performance.py  labelled mAP50 / mAP50-95 of a window and the previous production shadow-scored on it
    run.py          windows → signals + performance → verdict → MLflow; rollback on fail; status; label template
"""
