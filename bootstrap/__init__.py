"""Self-consistent bootstrapping (describe a box, ground the description, keep it if IoU >= lambda).

One Beam `ModelHandler` for both stages (`handlers.StageHandler`) with a small adapter per backend
(`florence2_handlers`, `kosmos2_handlers`, `chat_handlers`; the pure prompt and reply formats in `florence2`,
`kosmos2`, `chat`), the box selection (`selection`), the keep decision (`decide`) and the kept pairs as referring
expressions for a build (`pairs`), the recipe section (`options`), and tiny random models for the tests and the
benchmark (`tiny`); the pipeline is `rcforge.pipelines.bootstrap`.
"""
