"""Data: sources → curate → split → mix → format."""
