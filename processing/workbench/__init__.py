"""The analyst's workbench: server-rendered pages and charts on the API's reads, in the same process."""
