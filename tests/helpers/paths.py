"""Where the tests find the repository, their fixture files and the read-only ../shared data."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
FEEDS = FIXTURES / "feeds"
