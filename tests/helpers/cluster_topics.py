"""Two well-separated topics of short texts, for clustering and promotion tests."""

from datetime import UTC, datetime

DAY1 = datetime(2026, 3, 1, 12, tzinfo=UTC)

TOPICS = {
    "privacy": [
        "data privacy law protects personal records from leaks",
        "personal data privacy records leak worries citizens",
        "privacy of personal data records is at risk",
    ],
    "tourism": [
        "tourists visiting hotels and beaches this summer season",
        "summer tourists book hotels near the beaches",
        "beaches and hotels fill with summer tourists",
    ],
}
