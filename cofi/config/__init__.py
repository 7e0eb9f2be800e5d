"""Configuration: the settings and their schema, the start-up checks, the typed experiment."""
