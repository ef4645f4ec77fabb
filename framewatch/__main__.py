"""``python -m framewatch`` runs the framewatch command."""

from framewatch.cli import main

main()
