"""The analyst's workbench: server-rendered pages over the API, from a framing shift to the passages behind it."""
