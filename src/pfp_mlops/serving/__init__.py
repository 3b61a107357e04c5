"""`pfp serve`: an MLflow-compatible scoring server that follows a registry alias.

Modules: `config` (the `serve:` YAML section), `holder` (the served model, atomic swap, in-flight counts),
`scoring` (one request: parse, check images, predict, answer), `follower` (alias polling and reloads),
`state` (per-worker state files shared by the workers of one server), `predlog` (the prediction log writer),
`metrics` (Prometheus), `app` (routes), `server` (uvicorn start).
"""
