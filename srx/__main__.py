"""`python -m srx` (what `torchrun -m srx train ...` launches)."""
from srx.cli import main

main()
