"""``python -m fusionrec`` runs the CLI."""

from fusionrec.cli import main

main()
