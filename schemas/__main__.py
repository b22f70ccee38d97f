"""`python -m rcforge.schemas`: rewrite the committed JSON form of every schema."""

from rcforge.schemas import write_committed

for path in write_committed():
    print(f"wrote {path}")
