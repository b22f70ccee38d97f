"""Layer 6, looking at what a run wrote: shard statistics (`stats`), the HTML report (`report`), the preview
(`preview`), the checker (`validate`) and the trainer exports (`export`)."""
