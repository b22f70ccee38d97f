"""Layer 1, the foundations every other layer stands on: errors, input contracts, the canonical box, paths and
atomic writes (fsio, writer, outlock), output generations and their manifest, the ledger, images and masks, the
task registry and settings helpers, progress, and visual prompts' marks. Nothing here imports from a layer above.
"""
