"""Layer 4, the recipe: one typed tree (`tree`) that every stage takes its slice of, and the held-out images a
build leaves out (`exclusion`)."""
